package io.peft4j.samples.minilm;

import io.peft4j.annotations.LoRA;
import io.peft4j.samples.transformer.Linear;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;

/**
 * BERT's multi-head self-attention: {@code [batch, T, d] → [batch, T, d]} (before the output dense).
 *
 * <p>Queries, keys and values {@code [batch, heads, T, d/heads]}; scores {@code [batch, heads, T, T]}
 * plus the additive mask {@code [batch, 1, 1, T]} (0 for tokens, a large negative number for padding).
 * LoRA goes on the query and value projections, as in the LoRA paper.
 */
public final class BertSelfAttention {
    @LoRA(rank = 8, alpha = 16)
    final Linear query;
    final Linear key;
    @LoRA(rank = 8, alpha = 16)
    final Linear value;
    private final int heads;
    private final int size;

    public BertSelfAttention(SameDiff sd, String name, MiniLmConfig config, Random random) {
        this.query = new Linear(sd, name + ".query", config.hidden(), config.hidden(), random);
        this.key = new Linear(sd, name + ".key", config.hidden(), config.hidden(), random);
        this.value = new Linear(sd, name + ".value", config.hidden(), config.hidden(), random);
        this.heads = config.heads();
        this.size = config.hidden();
    }

    public SDVariable forward(SDVariable hidden, SDVariable additiveMask) {
        SameDiff sd = hidden.getSameDiff();
        SDVariable q = heads(query.forward(hidden));
        SDVariable k = heads(key.forward(hidden));
        SDVariable v = heads(value.forward(hidden));
        // Prefix tuning puts positions in front of the keys, which every query may attend to.
        SDVariable keyMask = MaskPadding.leftPad(additiveMask, 4, sd.sizeAt(k, 2), 0.0);
        SDVariable scores = sd.mmul(q, k, false, true, false).div(Math.sqrt((double) size / heads)).add(keyMask);
        SDVariable context = sd.mmul(sd.nn.softmax(scores, 3), v).permute(0, 2, 1, 3);
        return sd.reshape(context, hidden.shape());
    }

    private SDVariable heads(SDVariable sequence) {
        SameDiff sd = sequence.getSameDiff();
        SDVariable leading = sd.stridedSlice(sequence.shape(), new long[] {0}, new long[] {-1}, new long[] {1});
        SDVariable shape = sd.concat(0, leading, sd.constant(org.nd4j.linalg.factory.Nd4j.createFromArray((long) heads, (long) size / heads)));
        return sd.reshape(sequence, shape).permute(0, 2, 1, 3);
    }
}
