package io.peft4j.samples.minilm;

import io.peft4j.samples.transformer.LayerNorm;
import io.peft4j.samples.transformer.Linear;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;

/**
 * BERT's {@code SelfOutput} and {@code Output}: {@code LayerNorm(dense(h) + residual)},
 * {@code h [batch, T, in]}, residual and result {@code [batch, T, d]}.
 */
public final class BertResidualOutput {
    final Linear dense;
    final LayerNorm layerNorm;

    public BertResidualOutput(SameDiff sd, String name, int in, MiniLmConfig config, Random random) {
        this.dense = new Linear(sd, name + ".dense", in, config.hidden(), random);
        this.layerNorm = new LayerNorm(sd, name + ".LayerNorm.weight", name + ".LayerNorm.bias", config.hidden(), config.layerNormEps());
    }

    public SDVariable forward(SDVariable hidden, SDVariable residual) {
        return layerNorm.forward(dense.forward(hidden).add(residual));
    }
}
