package io.peft4j.runtime.internal;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ops.impl.reduce.TensorMmul;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Sums and means along an activation's last axis or its leading axes as matrix products with a
 * vector of ones, for the gradient rewrites that need them.
 *
 * <p>libnd4j's {@code reduce_sum} and {@code reduce_mean} are slow along these axes on the CPU; a
 * product runs in OpenBLAS at memory speed. Throwaway harness, fp32, 2 threads, median µs, reduction
 * against {@code tensormmul}: the last axis of {@code [16, 64, 256]} 218–336 against 98–163, of
 * {@code [16, 128, 384]} 408–449 against 168–178, of {@code [16, 64, 1024]} 338–441 against 295
 * (of {@code [16, 4, 64, 64]}: no gain, so short axes are left to libnd4j); the leading axes of
 * {@code [16, 64, 1024]} 4,526–4,586 against 235–238, of {@code [16, 64, 256]} 419–444 against
 * 78–91. Values agree to rounding (the order of the additions differs).
 *
 * <p>The op is built directly: SameDiff's {@code tensorMmul(x, y, dimensionsX, dimensionsY)} passed
 * the axes without their counts and libnd4j refused them.
 *
 * <p>Shapes: {@code x} has rank {@code rank} (from the first batch, {@link ActivationShapes}); only
 * the summed sizes are fixed in the graph, so batches of other sizes (an epoch's last) still work.
 */
final class SumAsProduct {
    /** The shortest last axis worth a product; at 64 the two measured the same. */
    static final long SHORTEST_LAST_AXIS = 128;

    private SumAsProduct() {
    }

    /**
     * {@code x}'s sum (or mean) along its last axis of {@code size} elements, keeping that axis as 1
     * when {@code keepDims}: {@code x [..., size] · w [size, 1]}, {@code w} ones (or {@code 1/size}).
     */
    static SDVariable lastAxis(SameDiff graph, SDVariable x, int rank, long size, boolean mean, boolean keepDims) {
        SDVariable weights = graph.constant(Nd4j.ones(x.dataType(), size, 1).muli(mean ? 1.0 / size : 1.0));
        SDVariable product = new TensorMmul(graph, x, weights, new int[][] {{rank - 1}, {0}}).outputVariable();
        return keepDims ? product : graph.squeeze(product, rank - 1);
    }

    /**
     * {@code x}'s sum over its first {@code count} axes, shaped as its remaining axes: a product with
     * ones of the summed axes' sizes, made from a one-element-per-position slice of {@code x} so that
     * the batch size may change.
     */
    static SDVariable leadingAxes(SameDiff graph, SDVariable x, int rank, int count) {
        long[] begin = new long[rank];
        long[] end = new long[rank];
        long[] strides = new long[rank];
        int endMask = 0;
        int shrink = 0;
        for (int axis = 0; axis < rank; axis++) {
            strides[axis] = 1;
            if (axis < count) {
                endMask |= 1 << axis;
            } else {
                end[axis] = 1;
                shrink |= 1 << axis;
            }
        }
        SDVariable ones = graph.onesLike(graph.stridedSlice(x, begin, end, strides, 0, endMask, 0, 0, shrink));
        int[] summed = new int[count];
        for (int axis = 0; axis < count; axis++) {
            summed[axis] = axis;
        }
        return new TensorMmul(graph, ones, x, new int[][] {summed, summed}).outputVariable();
    }
}
