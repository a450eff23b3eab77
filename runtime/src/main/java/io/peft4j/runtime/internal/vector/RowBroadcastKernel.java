package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Every element of row {@code r} of {@code y} set to {@code g[r] / divisor}: the gradient of a sum
 * ({@code divisor} 1) or a mean ({@code divisor} d) along the last axis, as libnd4j's
 * {@code reduce_sum_bp} and {@code reduce_mean_bp} compute it.
 *
 * <p>Shapes: {@code g} one element per row ({@code [..]} or {@code [.., 1]}); {@code y [.., d]}
 * contiguous. One product with 1/d per row, in fp32, as libnd4j (a division differs in the last bit).
 */
final class RowBroadcastKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private final FloatRegion g;
    private final FloatRegion y;
    private final int width;
    private final float divisor;

    RowBroadcastKernel(FloatRegion g, FloatRegion y, int width, float divisor) {
        if (width < 1 || y.length() != (long) g.length() * width) {
            throw new IllegalArgumentException("row broadcast: " + g.length() + " rows of " + width + " into " + y.length() + " elements");
        }
        this.g = g;
        this.y = y;
        this.width = width;
        this.divisor = divisor;
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(g.length(), 1, y.length(), this::rows);
    }

    private void rows(int fromRow, int toRow) {
        int bound = SPECIES.loopBound(width);
        for (int row = fromRow; row < toRow; row++) {
            float value = divisor == 1f ? g.get(row) : g.get(row) * (1f / divisor);
            FloatVector broadcast = FloatVector.broadcast(SPECIES, value);
            int start = y.at(row * width);
            int i = 0;
            for (; i < bound; i += SPECIES.length()) {
                broadcast.intoByteBuffer(y.bytes(), start + i * Float.BYTES, FloatRegion.ORDER);
            }
            for (; i < width; i++) {
                y.bytes().putFloat(start + i * Float.BYTES, value);
            }
        }
    }
}
