package io.peft4j.runtime.internal;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.spi.LoraWeights;
import java.util.Arrays;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.random.custom.DistributionUniform;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One layer's LoRA branch: {@code y + dropout(x) · A · s · B}, with {@code A [in, r]} and
 * {@code B [r, out]}.
 *
 * <p>For a layer whose weight is an {@code SDVariable}, A and B are trainable variables of the
 * weight's {@link SameDiff} named {@code <path>.lora_A} and {@code <path>.lora_B}, and every forward
 * call made while building a graph adds the branch as graph operations. The scale is a graph
 * constant ({@code <path>.lora_scaling}) so that merging can switch off the branch in graphs that
 * were built before the merge. Dropout is a graph constant too ({@code <path>.lora_dropout}), set
 * to the configured rate only while the runtime trains, and to 0 otherwise.
 *
 * <p>For a layer whose weight is an {@code INDArray} the branch is computed eagerly.
 *
 * <p>The branch never materialises {@code W + s·A·B}: it costs {@code O(r · (in + out))} per row.
 */
public final class LoraBranch implements ForwardExtension {

    private final String path;
    private final Object layer;
    private final LoraSettings settings;
    private final WeightLayout layout;
    private final long in;
    private final long out;
    private final SameDiff sameDiff;
    private final SDVariable a;
    private final SDVariable b;
    private final SDVariable scaling;
    private final SDVariable dropoutRate;
    private final INDArray eagerA;
    private final INDArray eagerB;
    private boolean merged;
    private int graphUses;

    /**
     * Creates the branch for {@code layer}, whose weight (an {@code SDVariable} or {@code INDArray})
     * has {@code [in, out]} or {@code [out, in]} shape according to {@code layout}.
     */
    public LoraBranch(String path, Object layer, Object weight, WeightLayout layout, LoraSettings settings,
                      org.nd4j.linalg.api.rng.Random random) {
        ForwardDispatcher.requireNone(layer, LoraBranch.class, path);
        this.path = path;
        this.layer = layer;
        this.settings = settings;
        this.layout = layout;
        INDArray weightArray = io.peft4j.runtime.spi.LoraMerge.arrayOf(weight, path + ".weight");
        if (weightArray.rank() != 2) {
            throw new PeftException("Layer '" + path + "': the @Weight must be a matrix, but it has shape "
                    + Arrays.toString(weightArray.shape()));
        }
        long rows = weightArray.size(0);
        long cols = weightArray.size(1);
        this.in = layout == WeightLayout.IN_OUT ? rows : cols;
        this.out = layout == WeightLayout.IN_OUT ? cols : rows;
        if (settings.rank() > Math.min(in, out)) {
            throw new PeftException("@LoRA(rank = " + settings.rank() + ") on layer '" + path + "' ("
                    + layer.getClass().getSimpleName() + ", in = " + in + ", out = " + out + "): rank must not exceed min(in, out) = "
                    + Math.min(in, out) + "; choose a smaller rank");
        }
        DataType dtype = weightArray.dataType().isFPType() ? weightArray.dataType() : DataType.FLOAT;
        INDArray initialA = kaimingUniformA(dtype, random);
        INDArray initialB = Nd4j.zeros(dtype, settings.rank(), out);
        if (weight instanceof SDVariable variable) {
            this.sameDiff = variable.getSameDiff();
            this.a = sameDiff.var(path + ".lora_A", initialA);
            this.b = sameDiff.var(path + ".lora_B", initialB);
            this.scaling = sameDiff.constant(path + ".lora_scaling", Nd4j.scalar(dtype, settings.scaling()));
            this.dropoutRate = settings.dropout() > 0
                    ? sameDiff.constant(path + ".lora_dropout", Nd4j.scalar(dtype, 0.0)) : null;
            this.eagerA = null;
            this.eagerB = null;
        } else {
            this.sameDiff = null;
            this.a = null;
            this.b = null;
            this.scaling = null;
            this.dropoutRate = null;
            this.eagerA = initialA;
            this.eagerB = initialB;
        }
    }

    /** PEFT's init of lora_A: kaiming-uniform with a = √5 over fan-in, i.e. {@code U(-1/√in, 1/√in)}. */
    private INDArray kaimingUniformA(DataType dtype, org.nd4j.linalg.api.rng.Random random) {
        double bound = 1.0 / Math.sqrt(in);
        INDArray uniform01 = Nd4j.rand(random, in, settings.rank()).castTo(dtype);
        return uniform01.muli(2 * bound).subi(bound);
    }

    @Override
    public Object afterForward(Object input, Object output) {
        if (input instanceof SDVariable x && output instanceof SDVariable y) {
            return afterGraphForward(x, y);
        }
        if (input instanceof INDArray x && output instanceof INDArray y) {
            return afterEagerForward(x, y);
        }
        throw new PeftException("Layer '" + path + "': its forward method took " + typeName(input) + " and returned "
                + typeName(output) + "; a LoRA layer's forward must map an SDVariable to an SDVariable or an INDArray to an INDArray");
    }

    private SDVariable afterGraphForward(SDVariable x, SDVariable y) {
        if (sameDiff == null) {
            throw new PeftException("Layer '" + path + "' holds an INDArray weight, so its LoRA branch is eager; "
                    + "its forward method cannot take SDVariables");
        }
        if (y.getSameDiff() != sameDiff) {
            throw new PeftException("Layer '" + path + "' built its output in a different SameDiff than the one "
                    + "holding its weight; build the graph in the SameDiff the model was created with");
        }
        checkLastDimension("input", staticShape(x), in);
        checkLastDimension("output", staticShape(y), out);
        if (merged) {
            return y;
        }
        graphUses++;
        SDVariable rows = x.reshape(-1, in);
        if (dropoutRate != null) {
            rows = rows.mul(dropoutMask(rows));
        }
        SDVariable delta = rows.mmul(a).mul(scaling).mmul(b);
        return y.add(delta.reshape(y.shape()));
    }

    /** Inverted dropout: keep each element with probability {@code 1 - rate} and scale by its inverse. */
    private SDVariable dropoutMask(SDVariable rows) {
        SDVariable uniform = new DistributionUniform(sameDiff, rows.shape(), 0.0, 1.0, rows.dataType()).outputVariable();
        return uniform.gte(dropoutRate).castTo(rows.dataType()).div(dropoutRate.rsub(1.0));
    }

    private INDArray afterEagerForward(INDArray x, INDArray y) {
        checkLastDimension("input", x.shape(), in);
        checkLastDimension("output", y.shape(), out);
        if (merged) {
            return y;
        }
        INDArray weightA = eagerA != null ? eagerA : a.getArr();
        INDArray weightB = eagerB != null ? eagerB : b.getArr();
        INDArray delta = x.reshape(-1, in).mmul(weightA).muli(settings.scaling()).mmul(weightB);
        return y.add(delta.reshape(y.shape()));
    }

    private static long[] staticShape(SDVariable variable) {
        try {
            return variable.getShape();
        } catch (RuntimeException unknownUntilExecution) {
            return null;
        }
    }

    private void checkLastDimension(String what, long[] shape, long expected) {
        if (shape == null || shape.length == 0) {
            return;
        }
        long last = shape[shape.length - 1];
        if (last >= 0 && last != expected) {
            throw new PeftException("LoRA layer '" + path + "' (" + layer.getClass().getSimpleName() + ", weight "
                    + (layout == WeightLayout.IN_OUT ? "[" + in + ", " + out + "]" : "[" + out + ", " + in + "]") + " " + layout
                    + ") got an " + what + " of shape " + Arrays.toString(shape) + ": its last dimension must be " + expected
                    + (what.equals("input") ? " (the weight's input features)" : " (the weight's output features)")
                    + "; check the @Weight layout");
        }
    }

    private static String typeName(Object value) {
        return value == null ? "null" : value.getClass().getSimpleName();
    }

    public String path() {
        return path;
    }

    public Object layer() {
        return layer;
    }

    public LoraSettings settings() {
        return settings;
    }

    public long in() {
        return in;
    }

    public long out() {
        return out;
    }

    /** The SameDiff that holds A and B, or {@code null} for an eager layer. */
    public SameDiff sameDiff() {
        return sameDiff;
    }

    /** The names of the trainable variables, {@code <path>.lora_A} and {@code <path>.lora_B}; empty when eager. */
    public java.util.List<String> variableNames() {
        return a == null ? java.util.List.of() : java.util.List.of(a.name(), b.name());
    }

    /** The live factors (not copies) and the configured scale. */
    public LoraWeights weights() {
        return new LoraWeights(eagerA != null ? eagerA : a.getArr(), eagerB != null ? eagerB : b.getArr(), settings.scaling());
    }

    public long parameterCount() {
        return settings.rank() * (in + out);
    }

    /** How many times a forward call added this branch to a graph. */
    public int graphUses() {
        return graphUses;
    }

    public boolean isGraph() {
        return sameDiff != null;
    }

    public boolean isMerged() {
        return merged;
    }

    /** Marks the branch merged (or not): graphs built before see a zero scale, later forward calls add no branch. */
    public void setMerged(boolean merged) {
        this.merged = merged;
        if (scaling != null) {
            scaling.getArr().assign(merged ? 0.0 : settings.scaling());
        }
    }

    /** Turns dropout on (the configured rate) for training, or off for inference. */
    public void setTraining(boolean training) {
        if (dropoutRate != null) {
            dropoutRate.getArr().assign(training ? settings.dropout() : 0.0);
        }
    }

    public void register() {
        ForwardDispatcher.register(layer, this, path);
    }

    public void unregister() {
        ForwardDispatcher.unregister(layer, this);
    }
}
