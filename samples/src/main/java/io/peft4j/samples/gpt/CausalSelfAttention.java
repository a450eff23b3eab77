package io.peft4j.samples.gpt;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.KeyValueCache;
import io.peft4j.samples.transformer.Linear;
import io.peft4j.samples.transformer.Shapes;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Causal multi-head self-attention with an optional key/value cache.
 *
 * <p>Input {@code x [batch, T, d]}, output {@code [batch, T, d]}; inside, queries
 * {@code [batch, heads, T, d/heads]}, keys and values {@code [batch, heads, T', d/heads]}. The key
 * length {@code T'} comes from the keys: prefix tuning puts {@code n} positions in front of the key
 * and value projections' outputs, and a cache puts the {@code P} positions already seen there. LoRA
 * (r = 8) adapts the query and value projections.
 */
public final class CausalSelfAttention {
    @LoRA(rank = 8, alpha = 16)
    final Linear query;
    final Linear key;
    @LoRA(rank = 8, alpha = 16)
    final Linear value;
    final Linear output;
    private final int heads;
    private final int size;

    public CausalSelfAttention(SameDiff sd, String name, int size, int heads, Random random) {
        this.query = new Linear(sd, name + ".query", size, size, random);
        this.key = new Linear(sd, name + ".key", size, size, random);
        this.value = new Linear(sd, name + ".value", size, size, random);
        this.output = new Linear(sd, name + ".output", size, size, random);
        this.heads = heads;
        this.size = size;
    }

    public SDVariable forward(SDVariable x) {
        return attend(x, null).output();
    }

    /**
     * Attends over {@code past} (keys and values {@code [batch, P, d]}, or {@code null} for none) and
     * {@code x}. With a cache, {@code x} is one new position {@code [batch, 1, d]}: whatever the key and
     * value projections put in front of it (prefixes) is already in the cache, so only their last
     * position is appended. Returns the output and the cache including {@code x}.
     */
    public Attended attend(SDVariable x, KeyValue past) {
        SameDiff sd = x.getSameDiff();
        SDVariable keys = key.forward(x);
        SDVariable values = value.forward(x);
        if (past != null) {
            keys = sd.concat(1, past.keys(), Sequences.last(keys, 1));
            values = sd.concat(1, past.values(), Sequences.last(values, 1));
        }
        SDVariable q = splitHeads(query.forward(x));
        SDVariable scores = sd.mmul(q, splitHeads(keys), false, true, false).div(Math.sqrt((double) size / heads));
        // A cached step's one query is the last position, which sees every key: its mask would be all
        // zeros, and building it cost a dozen ops per layer in a step that is mostly per-op overhead.
        SDVariable weights = sd.nn.softmax(past != null ? scores : scores.add(Sequences.causalMask(scores)), 3);
        SDVariable attended = sd.mmul(weights, splitHeads(values));
        SDVariable merged = sd.reshape(attended.permute(0, 2, 1, 3), x.shape());
        return new Attended(output.forward(merged), new KeyValue(keys, values));
    }

    /**
     * Eager {@link #attend(SDVariable, KeyValue)} of one sequence (inference without a graph): attends
     * from {@code x [T, d]} over what {@code cache} holds and {@code x}'s own keys and values, which it
     * appends to the cache (with whatever the key and value projections put in front of them when the
     * cache is empty: prefixes). Returns {@code [T, d]}.
     */
    public INDArray attend(INDArray x, KeyValueCache cache) {
        INDArray keys = key.forward(x);
        INDArray values = value.forward(x);
        long length = x.size(0);
        cache.append(cache.isEmpty() ? keys : lastRows(keys, length), cache.isEmpty() ? values : lastRows(values, length));
        return output.forward(cache.attendEach(this, query.forward(x), heads));
    }

    private static INDArray lastRows(INDArray rows, long n) {
        long length = rows.size(0);
        return n == length ? rows : rows.get(NDArrayIndex.interval(length - n, length), NDArrayIndex.all());
    }

    /** {@code [batch, T, d] → [batch, heads, T, d/heads]}. */
    private SDVariable splitHeads(SDVariable sequence) {
        SDVariable split = sequence.getSameDiff().reshape(sequence, Shapes.replaceLast(sequence, heads, size / heads));
        return split.permute(0, 2, 1, 3);
    }
}
