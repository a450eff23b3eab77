package io.peft4j.samples.transformer;

import io.peft4j.runtime.EagerSession;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.strict.GELU;
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

    /**
     * Eager (inference without a graph), with the same GELU op, in place; in an {@link EagerSession}
     * by peft4j's kernel where the process has it.
     */
    public INDArray forward(INDArray x) {
        INDArray hidden = up.forward(x);
        return down.forward(EagerSession.callLegacy(this, "gelu", () -> new GELU(hidden, hidden), hidden, hidden));
    }
}
