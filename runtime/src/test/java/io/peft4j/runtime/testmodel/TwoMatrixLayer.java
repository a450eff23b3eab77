package io.peft4j.runtime.testmodel;

import io.peft4j.runtime.bridge.ForwardDispatcher;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/** A gated layer with two matrices and no {@code @Weight}: LoRA cannot tell which one to adapt. */
public final class TwoMatrixLayer {
    public final SameDiff sd = SameDiff.create();
    final SDVariable gate = sd.var("gate", Nd4j.ones(DataType.FLOAT, 3, 3));
    final SDVariable up = sd.var("up", Nd4j.ones(DataType.FLOAT, 3, 3));

    public SDVariable forward(SDVariable x) {
        return (SDVariable) ForwardDispatcher.afterForward(this, x, x.mmul(gate).mul(x.mmul(up)));
    }
}
