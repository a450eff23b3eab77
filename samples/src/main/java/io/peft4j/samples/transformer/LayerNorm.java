package io.peft4j.samples.transformer;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Layer normalisation over the feature axis: {@code [batch, T, d] → [batch, T, d]}, gain {@code [d]},
 * bias {@code [d]}. (The axis is given as 2, not -1: ND4J M2.1 resolves a negative reduction axis
 * wrongly for values whose rank is unknown while the graph is built.)
 */
public final class LayerNorm {
    final SDVariable gain;
    final SDVariable bias;
    private final double epsilon;

    public LayerNorm(SameDiff sd, String name, int size) {
        this(sd, name + ".gain", name + ".bias", size, 1e-5);
    }

    /** With explicit variable names (to match a checkpoint's) and variance epsilon. */
    public LayerNorm(SameDiff sd, String gainName, String biasName, int size, double epsilon) {
        this.gain = sd.var(gainName, Nd4j.ones(DataType.FLOAT, size));
        this.bias = sd.var(biasName, Nd4j.zeros(DataType.FLOAT, size));
        this.epsilon = epsilon;
    }

    public SDVariable forward(SDVariable x) {
        SameDiff sd = x.getSameDiff();
        SDVariable centred = x.sub(x.mean(true, 2));
        // centred · centred, not square(centred): the same values, but SameDiff differentiates square
        // through a generic pow derivative that took 1.8 ms per [16, 64, 256] call (BENCHMARKS.md)
        SDVariable variance = centred.mul(centred).mean(true, 2);
        return centred.div(sd.math.sqrt(variance.add(epsilon))).mul(gain).add(bias);
    }
}
