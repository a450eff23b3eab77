package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.LoRA;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * {@code x [batch, 6] → blocks.0 [6, 5] → tanh → blocks.1 [5, 5] → tanh → head [5, 3]}: the
 * blocks are adapted through {@link TestLinear}'s class annotation, the head through a field
 * annotation with its own rank and rsLoRA.
 */
public final class TwoLayerModel {
    public static final int IN = 6;
    public static final int HIDDEN = 5;
    public static final int OUT = 3;

    public final SameDiff sd;
    final List<TestLinear> blocks;
    @LoRA(rank = 1, alpha = 2, rslora = true)
    final TestLinear head;

    public TwoLayerModel(DataType dtype, long seed) {
        this.sd = SameDiff.create();
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        this.blocks = List.of(new TestLinear(sd, "blocks.0", IN, HIDDEN, dtype, random),
                new TestLinear(sd, "blocks.1", HIDDEN, HIDDEN, dtype, random));
        this.head = new TestLinear(sd, "head", HIDDEN, OUT, dtype, random);
    }

    /** {@code x [batch, 6]} to {@code [batch, 3]}. */
    public SDVariable forward(SDVariable x) {
        SDVariable h = x;
        for (TestLinear block : blocks) {
            h = sd.math.tanh(block.forward(h));
        }
        return head.forward(h);
    }

    public List<TestLinear> blocks() {
        return blocks;
    }

    public TestLinear head() {
        return head;
    }
}
