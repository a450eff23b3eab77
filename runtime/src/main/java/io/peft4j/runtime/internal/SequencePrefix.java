package io.peft4j.runtime.internal;

import org.nd4j.autodiff.samediff.SDIndex;
import org.nd4j.autodiff.samediff.SDVariable;

/**
 * Puts {@code n} rows in front of every sequence of a batch:
 * {@code rows [n, d]} and {@code sequence [batch, T, d]} give {@code [batch, n + T, d]}.
 */
public final class SequencePrefix {

    private SequencePrefix() {
    }

    public static SDVariable prepend(SDVariable rows, long n, long width, SDVariable sequence) {
        // [batch, 1, d] zeros that carry the batch size, broadcast against [1, n, d]
        SDVariable batchZeros = sequence.get(SDIndex.all(), SDIndex.interval(0, 1), SDIndex.all()).mul(0.0);
        SDVariable perSequence = batchZeros.add(rows.reshape(1, n, width));
        return sequence.getSameDiff().concat(1, perSequence, sequence);
    }
}
