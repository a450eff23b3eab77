package io.peft4j.agenttest;

import io.peft4j.annotations.Weight;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/** {@code y = x · W}, {@code W [in, out]}; referenced only as the type of {@link Encoder}'s field. */
public final class Projection {
    @Weight
    final SDVariable weight;

    public Projection(SameDiff sd, String name, int in, int out) {
        this.weight = sd.var(name, Nd4j.rand(DataType.FLOAT, in, out));
    }

    public SDVariable forward(SDVariable x) {
        return x.mmul(weight);
    }
}
