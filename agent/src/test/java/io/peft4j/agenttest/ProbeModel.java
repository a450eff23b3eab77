package io.peft4j.agenttest;

import io.peft4j.annotations.LoRA;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;

/** {@code x [batch, 4] → first [4, 3] → marked [3, 3] → second [3, 2]}; second is left as the base. */
public final class ProbeModel {
    public final SameDiff sd = SameDiff.create();
    final Linear first = new Linear(sd, "first", 4, 3);
    @LoRA(rank = 1)
    final MarkedLayer marked = new MarkedLayer(sd, "marked", 3, 3);
    final Object[] tail = {new Linear(sd, "second", 3, 2)};

    public SDVariable forward(SDVariable x) {
        return ((Linear) tail[0]).forward(marked.project(first.forward(x)));
    }
}
