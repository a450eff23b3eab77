package io.peft4j.runtime.lora;

import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.GraphScalar;
import io.peft4j.runtime.spi.LoraMerge;
import io.peft4j.runtime.spi.LoraWeights;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.random.custom.DistributionUniform;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One adapter's LoRA branch on one layer: {@code dropout(x) · A · B · s}, with {@code A [in, r]} and
 * {@code B [r, out]}.
 *
 * <p>For a layer whose weight is an {@code SDVariable}, A and B are trainable variables of the
 * weight's {@link SameDiff} named {@code <path>.lora_A.<adapter>} and {@code <path>.lora_B.<adapter>}.
 * The scale is a graph constant that reads {@code s} while the branch is on and 0 while it is off or
 * merged, so graphs built before a switch or a merge follow it. Dropout is a graph constant too, set
 * to the configured rate only while the runtime trains. For an {@code INDArray} weight the branch is
 * computed eagerly.
 *
 * <p>The branch never materialises {@code W + s·A·B}: it costs {@code O(r · (in + out))} per row.
 */
final class LoraBranch {

    private final LoraSite site;
    private final String adapterName;
    private final int adapterId;
    private final LoraSettings settings;
    private final SameDiff sameDiff;
    private final SDVariable a;
    private final SDVariable b;
    private final GraphScalar scale;
    private final GraphScalar dropoutRate;
    private final INDArray eagerA;
    private final INDArray eagerB;
    private GraphScalar rowScale;
    private boolean active;
    private boolean merged;
    private boolean removed;
    private int graphUses;
    private int skippedWhileMerged;

    /** A new branch with PEFT's initialisation: A kaiming-uniform {@code U(−1/√in, 1/√in)}, B = 0. */
    LoraBranch(LoraSite site, AttachContext context, LoraSettings settings) {
        this(site, context, settings, null, null);
    }

    /** A branch with the given factors ({@code initialA [in, r]}, {@code initialB [r, out]}). */
    LoraBranch(LoraSite site, AttachContext context, LoraSettings settings, INDArray initialA, INDArray initialB) {
        this.site = site;
        this.adapterName = context.adapterName();
        this.adapterId = context.adapterId();
        this.settings = settings;
        Object weight = site.weight();
        INDArray weightArray = LoraMerge.arrayOf(weight, site.weightName());
        DataType dtype = weightArray.dataType().isFPType() ? weightArray.dataType() : DataType.FLOAT;
        INDArray startA = initialA != null ? initialA.castTo(dtype) : kaimingUniformA(dtype, context.random());
        INDArray startB = initialB != null ? initialB.castTo(dtype) : Nd4j.zeros(dtype, settings.rank(), site.out());
        if (weight instanceof SDVariable variable) {
            this.sameDiff = variable.getSameDiff();
            String base = site.path();
            this.a = sameDiff.var(context.variableName(sameDiff, base + ".lora_A." + adapterName), startA);
            this.b = sameDiff.var(context.variableName(sameDiff, base + ".lora_B." + adapterName), startB);
            this.scale = new GraphScalar(sameDiff, context.variableName(sameDiff, base + ".lora_scaling." + adapterName), dtype, 0.0);
            this.dropoutRate = settings.dropout() > 0
                    ? new GraphScalar(sameDiff, context.variableName(sameDiff, base + ".lora_dropout." + adapterName), dtype, 0.0) : null;
            this.eagerA = null;
            this.eagerB = null;
        } else {
            this.sameDiff = null;
            this.a = null;
            this.b = null;
            this.scale = null;
            this.dropoutRate = null;
            this.eagerA = startA;
            this.eagerB = startB;
        }
        if (sameDiff != null) {
            this.rowScale = new GraphScalar(sameDiff, context.variableName(sameDiff, site.path() + ".lora_row_scaling." + adapterName),
                    dtype, 0.0);
        }
        refresh();
    }

    /** PEFT's init of lora_A: kaiming-uniform with a = √5 over fan-in, i.e. {@code U(-1/√in, 1/√in)}. */
    private INDArray kaimingUniformA(DataType dtype, org.nd4j.linalg.api.rng.Random random) {
        double bound = 1.0 / Math.sqrt(site.in());
        INDArray uniform01 = Nd4j.rand(random, site.in(), settings.rank()).castTo(dtype);
        return uniform01.muli(2 * bound).subi(bound);
    }

    /** {@code dropout(rows) · A · B · s} for {@code rows [N, in]}, built into the graph; counts a use. */
    SDVariable graphDelta(SDVariable rows, boolean mixedBatch) {
        graphUses++;
        SDVariable input = dropoutRate == null ? rows : rows.mul(dropoutMask(rows));
        return input.mmul(a).mul(mixedBatch ? rowScale.variable() : scale.variable()).mmul(b);
    }

    /** Inverted dropout: keep each element with probability {@code 1 - rate} and scale by its inverse. */
    private SDVariable dropoutMask(SDVariable rows) {
        SDVariable rate = dropoutRate.variable();
        SDVariable uniform = new DistributionUniform(sameDiff, rows.shape(), 0.0, 1.0, rows.dataType()).outputVariable();
        return uniform.gte(rate).castTo(rows.dataType()).div(rate.rsub(1.0));
    }

    /** {@code rows · A · B · s} for {@code rows [N, in]}, or {@code null} while the branch is off. */
    INDArray eagerDelta(INDArray rows) {
        if (!active || merged || removed) {
            return null;
        }
        return rows.mmul(factorA()).muli(settings.scaling()).mmul(factorB());
    }

    private void refresh() {
        if (scale != null) {
            scale.set(active && !merged && !removed ? settings.scaling() : 0.0);
        }
        if (rowScale != null) {
            rowScale.set(!merged && !removed ? settings.scaling() : 0.0);
        }
    }

    void setActive(boolean active) {
        this.active = active;
        refresh();
    }

    void setMerged(boolean merged) {
        this.merged = merged;
        refresh();
    }

    void setRemoved() {
        this.removed = true;
        refresh();
    }

    void setTraining(boolean training) {
        if (dropoutRate != null) {
            dropoutRate.set(training ? settings.dropout() : 0.0);
        }
    }

    void merge() {
        LoraMerge.merge(site.weight(), weights(), site.layout(), site.weightName());
        setMerged(true);
    }

    void unmerge() {
        LoraMerge.unmerge(site.weight(), weights(), site.layout(), site.weightName());
        setMerged(false);
    }

    void skippedWhileMerged() {
        skippedWhileMerged++;
    }

    /** How many graphs were built while this branch was merged (they have no branch to switch back on). */
    int graphsBuiltWhileMerged() {
        return skippedWhileMerged;
    }

    LoraSite site() {
        return site;
    }

    String adapterName() {
        return adapterName;
    }

    int adapterId() {
        return adapterId;
    }

    LoraSettings settings() {
        return settings;
    }

    SameDiff sameDiff() {
        return sameDiff;
    }

    boolean isGraph() {
        return sameDiff != null;
    }

    boolean isMerged() {
        return merged;
    }

    int graphUses() {
        return graphUses;
    }

    /** The names of A and B in the graph; empty when eager. */
    java.util.List<String> variableNames() {
        return a == null ? java.util.List.of() : java.util.List.of(a.name(), b.name());
    }

    INDArray factorA() {
        return eagerA != null ? eagerA : a.getArr();
    }

    INDArray factorB() {
        return eagerB != null ? eagerB : b.getArr();
    }

    /** The live factors (not copies) and the configured scale. */
    LoraWeights weights() {
        return new LoraWeights(factorA(), factorB(), settings.scaling());
    }

    long parameterCount() {
        return (long) settings.rank() * (site.in() + site.out());
    }

    LoraLayer view() {
        return new LoraLayer(site.path(), site.layerType(), site.in(), site.out(), settings.rank(), settings.alpha(), settings.dropout(),
                settings.rslora(), site.layout(), weights());
    }
}
