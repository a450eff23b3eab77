package io.peft4j.agenttest;

import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.Weight;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/** {@code y = x · W}, {@code W [in, out]}: plain user code, instrumented only by the agent. */
@LoRA(rank = 2, alpha = 4)
public final class Linear {
    @Weight
    final SDVariable weight;

    public Linear(SameDiff sd, String name, int in, int out) {
        this.weight = sd.var(name, Nd4j.rand(DataType.FLOAT, in, out));
    }

    public SDVariable forward(SDVariable x) {
        return x.mmul(weight);
    }
}
