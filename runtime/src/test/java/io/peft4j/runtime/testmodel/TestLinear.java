package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.Weight;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A linear layer {@code y = x · W + b}, {@code W [in, out]}, woven by hand: its forward ends with
 * the same call the agent's advice inlines, so runtime tests need no agent.
 */
@LoRA(rank = 2, alpha = 4)
public final class TestLinear {
    @Weight
    final SDVariable weight;
    final SDVariable bias;

    public TestLinear(SameDiff sd, String name, int in, int out, DataType dtype, Random random) {
        this.weight = sd.var(name + ".weight", Nd4j.rand(random, in, out).castTo(dtype).subi(0.5));
        this.bias = sd.var(name + ".bias", Nd4j.rand(random, 1, out).castTo(dtype).subi(0.5).reshape(out));
    }

    public SDVariable forward(SDVariable x) {
        SDVariable y = x.mmul(weight).add(bias);
        return (SDVariable) ForwardDispatcher.afterForward(this, x, y);
    }

    /** Eager: {@code x [batch, in] → [batch, out]} with the weights' current values. */
    public INDArray forward(INDArray x) {
        return (INDArray) ForwardDispatcher.afterForward(this, x, x.mmul(weight.getArr()).addiRowVector(bias.getArr()));
    }

    public SDVariable weight() {
        return weight;
    }
}
