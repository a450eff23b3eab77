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
 */
public final class SelfAttention {
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
        SameDiff sd = x.getSameDiff();
        SDVariable q = splitHeads(query.forward(x));
        SDVariable k = splitHeads(key.forward(x));
        SDVariable v = splitHeads(value.forward(x));
        SDVariable scores = sd.mmul(q, k, false, true, false).div(Math.sqrt((double) size / heads));
        SDVariable attended = sd.mmul(sd.nn.softmax(scores, 3), v);
        SDVariable merged = sd.reshape(attended.permute(0, 2, 1, 3), x.shape());
        return output.forward(merged);
    }

    /** {@code [batch, T, d] → [batch, heads, T, d/heads]}. */
    private SDVariable splitHeads(SDVariable sequence) {
        SDVariable split = sequence.getSameDiff().reshape(sequence, Shapes.replaceLast(sequence, heads, size / heads));
        return split.permute(0, 2, 1, 3);
    }
}
