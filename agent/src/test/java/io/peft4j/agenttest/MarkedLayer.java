package io.peft4j.agenttest;

import io.peft4j.annotations.Forward;
import io.peft4j.annotations.Weight;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/** A layer whose forward method is marked with {@code @Forward}; the public {@code forward} is a decoy. */
public final class MarkedLayer {
    @Weight
    final SDVariable weight;

    public MarkedLayer(SameDiff sd, String name, int in, int out) {
        this.weight = sd.var(name, Nd4j.rand(DataType.FLOAT, in, out));
    }

    @Forward
    public SDVariable project(SDVariable x) {
        return x.mmul(weight);
    }

    public SDVariable forward(SDVariable x) {
        return x;
    }
}
