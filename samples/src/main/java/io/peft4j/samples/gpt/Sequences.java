package io.peft4j.samples.gpt;

import org.nd4j.autodiff.samediff.SDIndex;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;

/** Sequence operations on {@code [batch, T, ...]} graphs whose {@code T} is known only when they run. */
final class Sequences {

    private Sequences() {
    }

    /**
     * The last {@code n} positions of {@code x [batch, T, d]}: {@code [batch, n, d]}. Prompt and prefix
     * tuning put positions in front of a layer's output; a cached step keeps only the new ones.
     */
    static SDVariable last(SDVariable x, int n) {
        // One strided slice from position -n (the masks take axes 0 and 2 whole and axis 1 to its end).
        // It replaced a reverse, slice and reverse that copied the whole sequence twice: 9 ms of a
        // 75 ms cached decoding step went to those copies (BENCHMARKS.md).
        return x.getSameDiff().stridedSlice(x, new long[] {0, -n, 0}, new long[] {0, 0, 0}, new long[] {1, 1, 1},
                0b101, 0b111, 0, 0, 0);
    }

    /**
     * The additive causal mask for attention scores {@code [batch, heads, Tq, Tk]}: query {@code i}
     * (the queries are the last {@code Tq} of the {@code Tk} positions) may see key {@code j} iff
     * {@code j ≤ i + Tk − Tq}. That one rule covers a full pass ({@code Tq = Tk}), prefixes in front
     * of the keys ({@code Tk = n + Tq}) and a cached step ({@code Tq = 1}). Returns {@code [Tq, Tk]}
     * with 0 where visible and −1e9 elsewhere.
     */
    static SDVariable causalMask(SDVariable scores) {
        SameDiff sd = scores.getSameDiff();
        SDVariable ones = sd.onesLike(scores.get(SDIndex.point(0), SDIndex.point(0)));
        SDVariable column = sd.cumsum(ones, false, false, 1);
        SDVariable row = sd.cumsum(ones, false, false, 0);
        // Full reductions: in ND4J 1.0.0-M2.1 a sum along an axis of length 1 (one query) fails.
        SDVariable queries = row.max();
        SDVariable keys = column.max();
        SDVariable hidden = column.sub(row).gt(keys.sub(queries));
        return hidden.castTo(DataType.FLOAT).mul(-1e9);
    }
}
