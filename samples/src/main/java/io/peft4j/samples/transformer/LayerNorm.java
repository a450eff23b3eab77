package io.peft4j.samples.transformer;

import io.peft4j.runtime.EagerSession;
import java.util.function.Supplier;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Layer normalisation over the feature axis: {@code [batch, T, d] → [batch, T, d]}, gain {@code [d]},
 * bias {@code [d]}. (The axis is given as 2, not -1: ND4J M2.1 resolves a negative reduction axis
 * wrongly for values whose rank is unknown while the graph is built.)
 *
 * <p>Composed from primitives by default. {@code -D}{@value #FUSED_PROPERTY}{@code =true} builds ND4J's
 * fused {@code layer_norm} op instead (one op forward and one native op backward instead of about ten
 * of each). On the development machine's CPU it was not faster (BENCHMARKS.md); it may be elsewhere.
 * The fused op has no variance epsilon, so it is used only where the epsilon cannot change an fp32
 * result: {@code ε ≤ 1e-10} changes {@code 1/√(σ² + ε)} by {@code ε / 2σ²}, below fp32's resolution
 * for any {@code σ² ≥ 1e-3}. The samples' own models use {@code ε = 1e-12}, as BERT does.
 */
public final class LayerNorm {
    /** Builds ND4J's fused op where the epsilon allows it; read when a graph is built. */
    public static final String FUSED_PROPERTY = "peft4j.samples.fusedLayerNorm";
    /** Epsilons at or below this leave an fp32 LayerNorm unchanged, so the fused op (which has none) may compute it. */
    static final double FUSABLE_EPSILON = 1e-10;

    final SDVariable gain;
    final SDVariable bias;
    private final double epsilon;

    public LayerNorm(SameDiff sd, String name, int size) {
        this(sd, name + ".gain", name + ".bias", size, 1e-12);
    }

    /** With explicit variable names (to match a checkpoint's) and variance epsilon. */
    public LayerNorm(SameDiff sd, String gainName, String biasName, int size, double epsilon) {
        this.gain = sd.var(gainName, Nd4j.ones(DataType.FLOAT, size));
        this.bias = sd.var(biasName, Nd4j.zeros(DataType.FLOAT, size));
        this.epsilon = epsilon;
    }

    public SDVariable forward(SDVariable x) {
        return Boolean.getBoolean(FUSED_PROPERTY) && epsilon <= FUSABLE_EPSILON ? fused(x) : composed(x);
    }

    /**
     * Eager (inference without a graph), over the last axis of {@code x [..., d]}: ND4J's fused
     * {@code layer_norm} op wherever the epsilon allows it (see above), else the ops of
     * {@link #composed}. Unlike in a graph, where the fused op's backward made training slower, one op
     * instead of nine is what an eager decoding step needs: it is bound by per-op cost (BENCHMARKS.md).
     * In an {@link EagerSession} the op reuses its native context and output.
     */
    public INDArray forward(INDArray x) {
        if (epsilon <= FUSABLE_EPSILON) {
            INDArray normalised = EagerSession.outputFor(this, "normalised", x.dataType(), x.shape());
            int axis = x.rank() - 1;
            Supplier<CustomOp> op = () -> new org.nd4j.linalg.api.ops.impl.transforms.custom.LayerNorm(x, gain.getArr(), bias.getArr(), normalised,
                    false, axis);
            return EagerSession.call(this, "layer_norm over axis " + axis, op, normalised, x, gain.getArr(), bias.getArr());
        }
        INDArray rows = x.reshape(-1, x.size(x.rank() - 1));
        INDArray centred = rows.subColumnVector(rows.mean(true, 1));
        INDArray deviation = Transforms.sqrt(centred.mul(centred).mean(true, 1).addi(epsilon), false);
        return centred.diviColumnVector(deviation).muliRowVector(gain.getArr()).addiRowVector(bias.getArr()).reshape(x.shape());
    }

    /** ND4J's {@code layer_norm} op: {@code (x − mean) / σ · gain + bias}, without an epsilon. */
    SDVariable fused(SDVariable x) {
        return x.getSameDiff().nn.layerNorm(x, gain, bias, false, 2);
    }

    /** The definition, op by op: {@code (x − mean) / √(variance + ε) · gain + bias}. */
    SDVariable composed(SDVariable x) {
        SameDiff sd = x.getSameDiff();
        SDVariable centred = x.sub(x.mean(true, 2));
        // centred · centred, not square(centred): the same values, but SameDiff differentiates square
        // through a generic pow derivative that took 1.8 ms per [16, 64, 256] call (BENCHMARKS.md)
        SDVariable variance = centred.mul(centred).mean(true, 2);
        return centred.div(sd.math.sqrt(variance.add(epsilon))).mul(gain).add(bias);
    }
}
