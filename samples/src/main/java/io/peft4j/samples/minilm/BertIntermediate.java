package io.peft4j.samples.minilm;

import io.peft4j.samples.transformer.Linear;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;

/** {@code [batch, T, d] → dense [d, intermediate] → GELU → [batch, T, intermediate]}, with BERT's exact (erf) GELU. */
public final class BertIntermediate {
    final Linear dense;

    public BertIntermediate(SameDiff sd, String name, MiniLmConfig config, Random random) {
        this.dense = new Linear(sd, name + ".dense", config.hidden(), config.intermediate(), random);
    }

    public SDVariable forward(SDVariable hidden) {
        SDVariable x = dense.forward(hidden);
        SameDiff sd = x.getSameDiff();
        return x.mul(0.5).mul(sd.math.erf(x.div(Math.sqrt(2.0))).add(1.0));
    }
}
