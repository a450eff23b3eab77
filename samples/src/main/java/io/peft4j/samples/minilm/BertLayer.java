package io.peft4j.samples.minilm;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.AdapterPreset;
import io.peft4j.annotations.PrefixTuning;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;

/**
 * One BERT encoder layer, {@code [batch, T, d] → [batch, T, d]}; fields named as Hugging Face's modules.
 * A Pfeiffer bottleneck adapter is declared after the feed-forward block's output.
 */
public final class BertLayer {
    final Attention attention;
    final BertIntermediate intermediate;
    @Adapter(preset = AdapterPreset.PFEIFFER)
    final BertResidualOutput output;

    /** {@code attention.self} and {@code attention.output}. */
    public static final class Attention {
        @PrefixTuning(virtualTokens = 20)
        final BertSelfAttention self;
        final BertResidualOutput output;

        Attention(SameDiff sd, String name, MiniLmConfig config, Random random) {
            this.self = new BertSelfAttention(sd, name + ".self", config, random);
            this.output = new BertResidualOutput(sd, name + ".output", config.hidden(), config, random);
        }
    }

    public BertLayer(SameDiff sd, String name, MiniLmConfig config, Random random) {
        this.attention = new Attention(sd, name + ".attention", config, random);
        this.intermediate = new BertIntermediate(sd, name + ".intermediate", config, random);
        this.output = new BertResidualOutput(sd, name + ".output", config.intermediate(), config, random);
    }

    public SDVariable forward(SDVariable hidden, SDVariable additiveMask) {
        SDVariable attended = attention.output.forward(attention.self.forward(hidden, additiveMask), hidden);
        return output.forward(intermediate.forward(attended), attended);
    }
}
