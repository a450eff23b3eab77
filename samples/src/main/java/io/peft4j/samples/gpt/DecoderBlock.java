package io.peft4j.samples.gpt;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.AdapterPreset;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.runtime.EagerSession;
import io.peft4j.runtime.KeyValueCache;
import io.peft4j.samples.transformer.FeedForward;
import io.peft4j.samples.transformer.LayerNorm;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;

/**
 * A pre-LayerNorm (GPT-2 style) decoder block, {@code [batch, T, d] → [batch, T, d]}:
 * {@code h = x + attention(norm(x))}, {@code out = h + feedForward(norm(h))} with a GELU
 * feed-forward. Declares prefix tuning (16 key/value prefixes) on its attention and a bottleneck
 * adapter (Pfeiffer: after the feed-forward, b = d / 16, ReLU) on its feed-forward.
 */
public final class DecoderBlock {
    final LayerNorm attentionNorm;
    @PrefixTuning(virtualTokens = 16)
    final CausalSelfAttention attention;
    final LayerNorm feedForwardNorm;
    @Adapter(preset = AdapterPreset.PFEIFFER)
    final FeedForward feedForward;

    public DecoderBlock(SameDiff sd, String name, GptConfig config, Random random) {
        this.attentionNorm = new LayerNorm(sd, name + ".attention_norm", config.hidden());
        this.attention = new CausalSelfAttention(sd, name + ".attention", config.hidden(), config.heads(), random);
        this.feedForwardNorm = new LayerNorm(sd, name + ".feed_forward_norm", config.hidden());
        this.feedForward = new FeedForward(sd, name + ".feed_forward", config.hidden(), config.feedForward(), random);
    }

    public SDVariable forward(SDVariable x) {
        return decode(x, null).output();
    }

    /** As {@link #forward}, over a key/value cache ({@code null} for none); see {@link CausalSelfAttention#attend}. */
    public Attended decode(SDVariable x, KeyValue past) {
        Attended attended = attention.attend(attentionNorm.forward(x), past);
        SDVariable h = x.add(attended.output());
        return new Attended(h.add(feedForward.forward(feedForwardNorm.forward(h))), attended.present());
    }

    /**
     * Eager {@link #decode(SDVariable, KeyValue)} of one sequence {@code [T, d]}: appends this block's
     * keys and values to {@code cache}. The residual sums are {@link EagerSession#sum}s: in a session
     * they reuse their outputs and run in peft4j's kernels where the process has them.
     */
    public INDArray decode(INDArray x, KeyValueCache cache) {
        INDArray h = EagerSession.sum(this, "attention residual", x, attention.attend(attentionNorm.forward(x), cache));
        return EagerSession.sum(this, "feed-forward residual", h, feedForward.forward(feedForwardNorm.forward(h)));
    }
}
