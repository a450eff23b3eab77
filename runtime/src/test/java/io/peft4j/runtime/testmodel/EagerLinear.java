package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.Weight;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import org.nd4j.linalg.api.ndarray.INDArray;

/** A PyTorch-style eager linear layer {@code y = x · Wᵀ}, {@code W [out, in]}, woven by hand. */
@LoRA(rank = 3, alpha = 6)
public final class EagerLinear {
    @Weight(layout = WeightLayout.OUT_IN)
    final INDArray weight;

    public EagerLinear(INDArray weight) {
        this.weight = weight;
    }

    public INDArray forward(INDArray x) {
        return (INDArray) ForwardDispatcher.afterForward(this, x, x.mmul(weight.transpose()));
    }

    public INDArray weight() {
        return weight;
    }
}
