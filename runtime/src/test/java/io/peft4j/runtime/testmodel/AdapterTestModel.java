package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.AdapterPreset;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * {@code x [batch, 6] → hidden [6, 8] → tanh → output [8, 4]}, with a bottleneck adapter after each
 * layer: b = 3 (tanh) after hidden, b = 8 / 2 (Houlsby's swish) after output. Its layers are
 * {@link TestLinear}s, so LoRA (rank 2) is declared too.
 */
public final class AdapterTestModel {
    public static final int IN = 6;
    public static final int OUT = 4;

    public final SameDiff sd = SameDiff.create();
    @Adapter(size = 3, activation = "tanh")
    final TestLinear hidden;
    @Adapter(preset = AdapterPreset.HOULSBY, reductionFactor = 2)
    final TestLinear output;

    public AdapterTestModel(DataType dtype, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        this.hidden = new TestLinear(sd, "hidden", IN, 8, dtype, random);
        this.output = new TestLinear(sd, "output", 8, OUT, dtype, random);
    }

    public SDVariable forward(SDVariable x) {
        return output.forward(sd.math.tanh(hidden.forward(x)));
    }

    /** {@link #forward(SDVariable)} computed eagerly. */
    public INDArray forward(INDArray x) {
        return output.forward(Transforms.tanh(hidden.forward(x), true));
    }
}
