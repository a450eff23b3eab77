package io.peft4j.agenttest;

import io.peft4j.annotations.LoRA;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;

/**
 * {@code x [batch, 3] → projection [3, 3]}: a layer whose field holds another layer class. Loading
 * this class does not load {@link Projection}; that happens when an instance is built.
 */
public final class Encoder {
    public final SameDiff sd = SameDiff.create();
    @LoRA(rank = 1)
    final Projection projection = new Projection(sd, "projection", 3, 3);

    public SDVariable forward(SDVariable x) {
        return projection.forward(x);
    }
}
