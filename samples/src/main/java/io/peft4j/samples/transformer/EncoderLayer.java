package io.peft4j.samples.transformer;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.AdapterPreset;
import io.peft4j.annotations.PrefixTuning;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;

/**
 * A post-LayerNorm (BERT-style) encoder block: {@code [batch, T, d] → [batch, T, d]}. Declares prefix
 * tuning on its attention and a Pfeiffer bottleneck adapter after its feed-forward block.
 */
public final class EncoderLayer {
    @PrefixTuning(virtualTokens = 8)
    final SelfAttention attention;
    final LayerNorm attentionNorm;
    @Adapter(preset = AdapterPreset.PFEIFFER)
    final FeedForward feedForward;
    final LayerNorm outputNorm;

    public EncoderLayer(SameDiff sd, String name, TransformerConfig config, Random random) {
        this.attention = new SelfAttention(sd, name + ".attention", config.hidden(), config.heads(), random);
        this.attentionNorm = new LayerNorm(sd, name + ".attention_norm", config.hidden());
        this.feedForward = new FeedForward(sd, name + ".feed_forward", config.hidden(), config.feedForward(), random);
        this.outputNorm = new LayerNorm(sd, name + ".output_norm", config.hidden());
    }

    public SDVariable forward(SDVariable x) {
        SDVariable h = attentionNorm.forward(x.add(attention.forward(x)));
        return outputNorm.forward(h.add(feedForward.forward(h)));
    }
}
