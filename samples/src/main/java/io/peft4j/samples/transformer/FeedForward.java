package io.peft4j.samples.transformer;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;

/** {@code [rows, d] → up [d, ffn] → GELU → down [ffn, d] → [rows, d]}. */
public final class FeedForward {
    final Linear up;
    final Linear down;

    public FeedForward(SameDiff sd, String name, int size, int hidden, Random random) {
        this.up = new Linear(sd, name + ".up", size, hidden, random);
        this.down = new Linear(sd, name + ".down", hidden, size, random);
    }

    public SDVariable forward(SDVariable x) {
        return down.forward(x.getSameDiff().nn.gelu(up.forward(x)));
    }
}
