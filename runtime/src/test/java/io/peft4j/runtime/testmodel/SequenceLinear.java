package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.Weight;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/** {@code [..., in] → [..., out]}, {@code W [in, out]}, no bias; woven by hand. */
public final class SequenceLinear {
    @Weight
    final SDVariable weight;
    private final int in;
    private final int out;

    public SequenceLinear(SameDiff sd, String name, int in, int out, DataType dtype, Random random) {
        this.weight = sd.var(name + ".weight", Nd4j.rand(random, in, out).castTo(dtype).subi(0.5));
        this.in = in;
        this.out = out;
    }

    public SDVariable forward(SDVariable x) {
        SameDiff sd = x.getSameDiff();
        SDVariable leading = sd.stridedSlice(x.shape(), new long[] {0}, new long[] {-1}, new long[] {1});
        SDVariable shape = sd.concat(0, leading, sd.constant(Nd4j.createFromArray((long) out)));
        return (SDVariable) ForwardDispatcher.afterForward(this, x, sd.reshape(x.reshape(-1, in).mmul(weight), shape));
    }

    /** Eager: {@code [..., in] → [..., out]} with the weight's current value. */
    public INDArray forward(INDArray x) {
        long[] shape = x.shape().clone();
        shape[shape.length - 1] = out;
        return (INDArray) ForwardDispatcher.afterForward(this, x, x.reshape(-1, in).mmul(weight.getArr()).reshape(shape));
    }
}
