package io.peft4j.runtime.lora;

import io.peft4j.runtime.EagerSession;
import io.peft4j.runtime.RowProduct;
import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.GraphScalar;
import io.peft4j.runtime.spi.LoraMerge;
import io.peft4j.runtime.spi.LoraWeights;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarMultiplication;
import org.nd4j.linalg.api.ops.random.custom.DistributionUniform;

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
 * <p>The branch never materialises {@code W + s·A·B}: it costs {@code O(r · (in + out))} per row. With
 * DoRA ({@link DoraMagnitude}) it also holds the magnitude vector {@code <path>.lora_magnitude.<adapter> [out]},
 * and costs one more {@code x·W} per row plus {@code A·B} and its norms once per call.
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
    private final DoraMagnitude dora;
    /** PiSSA/OLoRA: the factors at step 0, whose product was taken out of the base weight; else null. */
    private final INDArray initialProductA;
    private final INDArray initialProductB;
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
        INDArray startA;
        INDArray startB;
        if (initialA != null) {
            startA = initialA.castTo(dtype);
            startB = initialB.castTo(dtype);
            this.initialProductA = null;
            this.initialProductB = null;
        } else {
            LoraInitialiser.Start start = LoraInitialiser.start(settings, weightArray, site.layout(), site.in(), site.out(), dtype,
                    context.random());
            startA = start.a();
            startB = start.b();
            if (start.residualWeight() != null) {
                weightArray.assign(start.residualWeight());
                this.initialProductA = startA.dup();
                this.initialProductB = startB.dup();
            } else {
                this.initialProductA = null;
                this.initialProductB = null;
            }
        }
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
        this.dora = settings.dora()
                ? DoraMagnitude.start(sameDiff, sameDiff == null ? null : context.variableName(sameDiff, site.path() + ".lora_magnitude." + adapterName),
                        weightArray, site.layout(), new LoraWeights(startA, startB, settings.scaling()))
                : null;
        if (sameDiff != null) {
            this.rowScale = new GraphScalar(sameDiff, context.variableName(sameDiff, site.path() + ".lora_row_scaling." + adapterName),
                    dtype, 0.0);
        }
        refresh();
    }

    /** {@code dropout(rows) · A · B · s} for {@code rows [N, in]}, built into the graph; counts a use. */
    SDVariable graphDelta(SDVariable rows, boolean mixedBatch) {
        graphUses++;
        SDVariable input = dropoutRate == null ? rows : rows.mul(dropoutMask(rows));
        SDVariable gate = mixedBatch ? rowScale.variable() : scale.variable();
        if (dora != null) {
            // The gate reads s while the branch is on, 0 while off: DoRA's term uses s itself, so the gate becomes 1 or 0.
            return dora.graphDelta(input, (SDVariable) site.weight(), site.layout(), a, b, settings.scaling())
                    .mul(gate.div(settings.scaling()));
        }
        return input.mmul(a).mul(gate).mmul(b);
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
        if (dora != null) {
            return dora.eagerDelta(rows, LoraMerge.arrayOf(site.weight(), site.weightName()), site.layout(), weights());
        }
        if (rows.size(0) == 1) {
            return oneRowDelta(rows);
        }
        return rows.mmul(factorA()).muli(settings.scaling()).mmul(factorB());
    }

    /**
     * {@link #eagerDelta} of one row (a decoding step) by {@link RowProduct}: two matrix-vector
     * products and the scaling, in the current {@link EagerSession}'s reused contexts, outputs and
     * kernels if there is one. Returns {@code [1, out]}.
     */
    private INDArray oneRowDelta(INDArray row) {
        INDArray down = RowProduct.times(this, "x A", row, factorA());
        double scaling = settings.scaling();
        // The scaling in the op's name: a session binds its kernel to one value per name.
        EagerSession.callLegacy(this, "x A · " + scaling, () -> new ScalarMultiplication(down, scaling), down, down);
        return RowProduct.times(this, "x A s B", down, factorB());
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
        if (dora != null) {
            dora.merge(LoraMerge.arrayOf(site.weight(), site.weightName()), site.layout(), weights(), site.weightName());
        } else {
            LoraMerge.merge(site.weight(), weights(), site.layout(), site.weightName());
        }
        setMerged(true);
    }

    void unmerge() {
        if (dora != null) {
            dora.unmerge(LoraMerge.arrayOf(site.weight(), site.weightName()), site.layout(), weights(), site.weightName());
        } else {
            LoraMerge.unmerge(site.weight(), weights(), site.layout(), site.weightName());
        }
        setMerged(false);
    }

    /**
     * Puts back into the base weight what a PiSSA or OLoRA initialisation took out ({@code s·A₀·B₀}),
     * when attaching fails after the branch was created; equal to the original weight up to rounding.
     */
    void undoInitialisation() {
        if (initialProductA != null) {
            LoraMerge.merge(site.weight(), new LoraWeights(initialProductA, initialProductB, settings.scaling()), site.layout(),
                    site.weightName());
        }
    }

    /** PiSSA/OLoRA: the factors at step 0, {@code [A₀, B₀]}, whose product the base weight no longer holds; else null. */
    INDArray[] initialFactors() {
        return initialProductA == null ? null : new INDArray[] {initialProductA, initialProductB};
    }

    /** DoRA's magnitude vector {@code [out]}, or null for plain LoRA. */
    INDArray magnitude() {
        return dora == null ? null : dora.array();
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
        if (a == null) {
            return java.util.List.of();
        }
        return dora == null ? java.util.List.of(a.name(), b.name()) : java.util.List.of(a.name(), b.name(), dora.variableName());
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
        return (long) settings.rank() * (site.in() + site.out()) + (dora == null ? 0 : site.out());
    }

    LoraLayer view() {
        return new LoraLayer(site.path(), site.layerType(), site.in(), site.out(), settings.rank(), settings.alpha(), settings.dropout(),
                settings.rslora(), site.layout(), weights(), magnitude(), settings.init());
    }
}
