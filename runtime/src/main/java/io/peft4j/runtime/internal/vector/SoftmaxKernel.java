package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Softmax along the last axis of a contiguous fp32 array: {@code y = e^(x − max) / Σ e^(x − max)}
 * per row, as libnd4j's {@code softmax} computes it.
 *
 * <p>Shapes: {@code x} and {@code y} {@code [.., d]}, viewed as {@code rows × d}; {@code y} may be
 * {@code x}. Three passes over each row (maximum, exponentials and their sum, scaling) while the row
 * is in cache.
 */
final class SoftmaxKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int COST = 12;

    private final FloatRegion x;
    private final FloatRegion y;
    private final int width;

    SoftmaxKernel(FloatRegion x, FloatRegion y, int width) {
        if (x.length() != y.length() || width < 1 || x.length() % width != 0) {
            throw new IllegalArgumentException("softmax: input of " + x.length() + " elements, output of " + y.length()
                    + ", rows of " + width);
        }
        this.x = x;
        this.y = y;
        this.width = width;
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(x.length() / width, 1, (long) x.length() * COST, this::rows);
    }

    private void rows(int fromRow, int toRow) {
        int bound = SPECIES.loopBound(width);
        VectorMask<Float> tail = SPECIES.indexInRange(bound, width);
        for (int row = fromRow; row < toRow; row++) {
            int in = x.at(row * width);
            int out = y.at(row * width);
            FloatVector maxima = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
            int i = 0;
            for (; i < bound; i += SPECIES.length()) {
                maxima = maxima.max(load(x, in, i));
            }
            float max = maxima.reduceLanes(VectorOperators.MAX);
            if (i < width) {
                max = Math.max(max, FloatVector.fromByteBuffer(SPECIES, x.bytes(), in + i * Float.BYTES, FloatRegion.ORDER, tail)
                        .reduceLanes(VectorOperators.MAX, tail));
            }
            FloatVector sums = FloatVector.zero(SPECIES);
            for (i = 0; i < bound; i += SPECIES.length()) {
                FloatVector e = Exp.of(load(x, in, i).sub(max));
                sums = sums.add(e);
                e.intoByteBuffer(y.bytes(), out + i * Float.BYTES, FloatRegion.ORDER);
            }
            float sum = sums.reduceLanes(VectorOperators.ADD);
            if (i < width) {
                FloatVector e = Exp.of(FloatVector.fromByteBuffer(SPECIES, x.bytes(), in + i * Float.BYTES, FloatRegion.ORDER, tail)
                        .sub(max));
                sum += e.reduceLanes(VectorOperators.ADD, tail);
                e.intoByteBuffer(y.bytes(), out + i * Float.BYTES, FloatRegion.ORDER, tail);
            }
            for (i = 0; i < bound; i += SPECIES.length()) {
                load(y, out, i).div(sum).intoByteBuffer(y.bytes(), out + i * Float.BYTES, FloatRegion.ORDER);
            }
            if (i < width) {
                FloatVector.fromByteBuffer(SPECIES, y.bytes(), out + i * Float.BYTES, FloatRegion.ORDER, tail).div(sum)
                        .intoByteBuffer(y.bytes(), out + i * Float.BYTES, FloatRegion.ORDER, tail);
            }
        }
    }

    private static FloatVector load(FloatRegion region, int rowByte, int index) {
        return FloatVector.fromByteBuffer(SPECIES, region.bytes(), rowByte + index * Float.BYTES, FloatRegion.ORDER);
    }
}
