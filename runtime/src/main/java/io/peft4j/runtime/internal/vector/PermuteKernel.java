package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code y = permute(x, axes)} for a permutation that keeps the last axis last, as attention's
 * {@code [b, t, h, d] ↔ [b, h, t, d]} does: every output row of {@code d} elements is one contiguous
 * row of {@code x}, copied with vector loads and stores.
 *
 * <p>Shapes: {@code x} of any rank ≥ 2, contiguous in C order; {@code y} contiguous with the permuted
 * shape. The copy is exact.
 */
final class PermuteKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private final FloatRegion x;
    private final FloatRegion y;
    private final int width;
    /** The output's sizes along every axis but the last. */
    private final int[] outerSizes;
    /** For each of those output axes, the step in x's elements. */
    private final int[] sourceSteps;

    PermuteKernel(FloatRegion x, long[] shape, int[] axes, FloatRegion y) {
        int rank = shape.length;
        if (rank < 2 || axes.length != rank || axes[rank - 1] != rank - 1 || x.length() != y.length()) {
            throw new IllegalArgumentException("permute: axes " + java.util.Arrays.toString(axes) + " of a rank-" + rank + " array");
        }
        long[] strides = new long[rank];
        long stride = 1;
        for (int axis = rank - 1; axis >= 0; axis--) {
            strides[axis] = stride;
            stride *= shape[axis];
        }
        this.x = x;
        this.y = y;
        this.width = (int) shape[rank - 1];
        this.outerSizes = new int[rank - 1];
        this.sourceSteps = new int[rank - 1];
        for (int axis = 0; axis < rank - 1; axis++) {
            outerSizes[axis] = (int) shape[axes[axis]];
            sourceSteps[axis] = (int) strides[axes[axis]];
        }
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(y.length() / Math.max(width, 1), 1, y.length(), this::rows);
    }

    private void rows(int fromRow, int toRow) {
        int[] index = new int[outerSizes.length];
        int source = 0;
        for (int axis = outerSizes.length - 1, rest = fromRow; axis >= 0; axis--) {
            index[axis] = rest % outerSizes[axis];
            rest /= outerSizes[axis];
            source += index[axis] * sourceSteps[axis];
        }
        int bound = SPECIES.loopBound(width);
        for (int row = fromRow; row < toRow; row++) {
            int from = x.at(source);
            int to = y.at(row * width);
            int i = 0;
            for (; i < bound; i += SPECIES.length()) {
                FloatVector.fromByteBuffer(SPECIES, x.bytes(), from + i * Float.BYTES, FloatRegion.ORDER)
                        .intoByteBuffer(y.bytes(), to + i * Float.BYTES, FloatRegion.ORDER);
            }
            for (; i < width; i++) {
                y.bytes().putFloat(to + i * Float.BYTES, x.bytes().getFloat(from + i * Float.BYTES));
            }
            // the next output row: an odometer over the output's outer axes
            for (int axis = outerSizes.length - 1; axis >= 0; axis--) {
                source += sourceSteps[axis];
                if (++index[axis] < outerSizes[axis]) {
                    break;
                }
                source -= sourceSteps[axis] * outerSizes[axis];
                index[axis] = 0;
            }
        }
    }
}
