package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The sum or the mean of each row along the last axis: LayerNorm's statistics and softmax's
 * backward sums.
 *
 * <p>Shapes: {@code x [.., d]} contiguous, viewed as {@code rows × d}; {@code y} has one element per
 * row ({@code [..]} or {@code [.., 1]}). Each row is summed in vector lanes and the lanes added at the
 * end, an order other than libnd4j's, so results agree to rounding, not bit for bit.
 */
final class RowReductionKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private final FloatRegion x;
    private final FloatRegion y;
    private final int width;
    private final boolean mean;

    RowReductionKernel(FloatRegion x, FloatRegion y, int width, boolean mean) {
        if (width < 1 || x.length() != (long) y.length() * width) {
            throw new IllegalArgumentException("row reduction: " + x.length() + " elements into " + y.length() + " rows of " + width);
        }
        this.x = x;
        this.y = y;
        this.width = width;
        this.mean = mean;
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(y.length(), 1, x.length(), this::rows);
    }

    private void rows(int fromRow, int toRow) {
        int bound = SPECIES.loopBound(width);
        for (int row = fromRow; row < toRow; row++) {
            int start = x.at(row * width);
            FloatVector lanes = FloatVector.zero(SPECIES);
            int i = 0;
            for (; i < bound; i += SPECIES.length()) {
                lanes = lanes.add(FloatVector.fromByteBuffer(SPECIES, x.bytes(), start + i * Float.BYTES, FloatRegion.ORDER));
            }
            float sum = lanes.reduceLanes(VectorOperators.ADD);
            for (; i < width; i++) {
                sum += x.bytes().getFloat(start + i * Float.BYTES);
            }
            y.put(row, mean ? sum / width : sum);
        }
    }
}
