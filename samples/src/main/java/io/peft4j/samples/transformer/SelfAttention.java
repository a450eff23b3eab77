package io.peft4j.samples.transformer;

import io.peft4j.annotations.LoRA;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.rng.Random;

/**
 * Multi-head scaled dot-product self-attention.
 *
 * <p>Input and output {@code [batch, T, d]}; inside, queries are {@code [batch, heads, T, d/heads]},
 * keys and values {@code [batch, heads, T', d/heads]} and the attention weights
 * {@code [batch, heads, T, T']}. The key length {@code T'} is taken from the keys, so that prefix
 * tuning may put {@code n} trainable positions in front of them ({@code T' = n + T}). The
 * query and value projections carry LoRA (rank 8), as in the LoRA paper's main setting; the key
 * and output projections are frozen with the rest of the model.
 *
 * <p>{@code -D}{@value #FUSED_PROPERTY}{@code =true} builds ND4J's {@code dot_product_attention} op
 * (softmax(QKᵀ/√d)V and its backward in native code) in place of the matrix products and softmax. On
 * the development machine's CPU it was not faster (BENCHMARKS.md).
 */
public final class SelfAttention {
    /** Builds ND4J's fused attention op; read when a graph is built. */
    public static final String FUSED_PROPERTY = "peft4j.samples.fusedAttention";

    @LoRA(rank = 8, alpha = 16)
    final Linear query;
    final Linear key;
    @LoRA(rank = 8, alpha = 16)
    final Linear value;
    final Linear output;
    private final int heads;
    private final int size;

    public SelfAttention(SameDiff sd, String name, int size, int heads, Random random) {
        if (size % heads != 0) {
            throw new IllegalArgumentException("hidden size " + size + " is not divisible by " + heads + " heads");
        }
        this.query = new Linear(sd, name + ".query", size, size, random);
        this.key = new Linear(sd, name + ".key", size, size, random);
        this.value = new Linear(sd, name + ".value", size, size, random);
        this.output = new Linear(sd, name + ".output", size, size, random);
        this.heads = heads;
        this.size = size;
    }

    public SDVariable forward(SDVariable x) {
        SDVariable q = query.forward(x);
        SDVariable k = key.forward(x);
        SDVariable v = value.forward(x);
        SDVariable merged = Boolean.getBoolean(FUSED_PROPERTY) ? fusedAttention(q, k, v) : attention(q, k, v);
        return output.forward(x.getSameDiff().reshape(merged, x.shape()));
    }

    /** Projected {@code q [batch, T, d]}, {@code k, v [batch, T', d]} → {@code [batch, T, heads, d/heads]}, op by op. */
    SDVariable attention(SDVariable q, SDVariable k, SDVariable v) {
        SameDiff sd = q.getSameDiff();
        SDVariable scores = sd.mmul(splitHeads(q), splitHeads(k), false, true, false).div(Math.sqrt((double) size / heads));
        return sd.mmul(sd.nn.softmax(scores, 3), splitHeads(v)).permute(0, 2, 1, 3);
    }

    /** As {@link #attention}, with ND4J's op, which takes and returns heads as {@code [batch, heads, d/heads, T]}. */
    SDVariable fusedAttention(SDVariable q, SDVariable k, SDVariable v) {
        SameDiff sd = q.getSameDiff();
        return sd.nn.dotProductAttention(featureMajor(q), featureMajor(k), featureMajor(v), null, true).permute(0, 3, 1, 2);
    }

    /** {@code [batch, T, d] → [batch, heads, d/heads, T]}. */
    private SDVariable featureMajor(SDVariable sequence) {
        return heads(sequence).permute(0, 2, 3, 1);
    }

    /** {@code [batch, T, d] → [batch, heads, T, d/heads]}. */
    private SDVariable splitHeads(SDVariable sequence) {
        return heads(sequence).permute(0, 2, 1, 3);
    }

    /** {@code [batch, T, d] → [batch, T, heads, d/heads]}. */
    private SDVariable heads(SDVariable sequence) {
        return sequence.getSameDiff().reshape(sequence, Shapes.replaceLast(sequence, heads, size / heads));
    }
}
