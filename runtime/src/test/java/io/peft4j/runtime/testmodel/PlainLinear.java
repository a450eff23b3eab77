package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.Weight;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * {@code y = x · W + b}, {@code W [in, out]}, with no annotation of its own: the fields that hold it
 * decide how it is adapted. Woven by hand.
 */
public final class PlainLinear {
    @Weight
    final SDVariable weight;
    final SDVariable bias;

    public PlainLinear(SameDiff sd, String name, int in, int out, DataType dtype, Random random) {
        this.weight = sd.var(name + ".weight", Nd4j.rand(random, in, out).castTo(dtype).subi(0.5));
        this.bias = sd.var(name + ".bias", Nd4j.rand(random, 1, out).castTo(dtype).subi(0.5).reshape(out));
    }

    public SDVariable forward(SDVariable x) {
        return (SDVariable) ForwardDispatcher.afterForward(this, x, x.mmul(weight).add(bias));
    }

    public SDVariable weight() {
        return weight;
    }

    public SDVariable bias() {
        return bias;
    }
}
