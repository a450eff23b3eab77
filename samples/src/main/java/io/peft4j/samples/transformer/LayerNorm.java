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

    public LayerNorm(SameDiff sd, String name, int size) {
        this.gain = sd.var(name + ".gain", Nd4j.ones(DataType.FLOAT, size));
        this.bias = sd.var(name + ".bias", Nd4j.zeros(DataType.FLOAT, size));
    }

    public SDVariable forward(SDVariable x) {
        SameDiff sd = x.getSameDiff();
        SDVariable centred = x.sub(x.mean(true, 2));
        SDVariable variance = sd.math.square(centred).mean(true, 2);
        return centred.div(sd.math.sqrt(variance.add(1e-5))).mul(gain).add(bias);
    }
}
