package io.peft4j.runtime.internal;

import org.nd4j.autodiff.samediff.SDIndex;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Puts {@code n} rows in front of every sequence of a batch:
 * {@code rows [n, d]} and {@code sequence [batch, T, d]} give {@code [batch, n + T, d]}, in a graph or
 * eagerly.
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

    /** Eagerly: {@code rows [n, d]} in front of {@code sequence [batch, T, d]}, or of one sequence {@code [T, d]}. */
    public static INDArray prepend(INDArray rows, INDArray sequence) {
        if (sequence.rank() == 2) {
            return Nd4j.concat(0, rows, sequence);
        }
        long batch = sequence.size(0);
        INDArray front = rows.reshape(1, rows.size(0), rows.size(1));
        return Nd4j.concat(1, batch == 1 ? front : Nd4j.tile(front, (int) batch, 1, 1), sequence);
    }
}
