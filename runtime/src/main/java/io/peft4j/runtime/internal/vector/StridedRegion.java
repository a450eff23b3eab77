package io.peft4j.runtime.internal.vector;

import java.nio.ByteBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The host memory of an fp32 array of rank 3 with any non-negative strides (a permuted view, such as
 * a key/value cache {@code [positions, heads · size]} seen as {@code [heads, size, positions]}): a
 * direct byte buffer over the array's data buffer, the byte offset of element {@code [0, 0, 0]} and
 * the strides in elements.
 *
 * <p>Only arrays on the host qualify (ND4J's CPU backend); {@link #of} refuses any other array.
 */
record StridedRegion(ByteBuffer bytes, int start, int[] shape, int[] strides) {
    /** The region of {@code array}, or {@code null} when it is not fp32 of rank 3 or has negative strides. */
    static StridedRegion of(INDArray array) {
        if (array == null || array.dataType() != DataType.FLOAT || array.rank() != 3 || array.isEmpty()) {
            return null;
        }
        long last = array.offset();
        int[] shape = new int[3];
        int[] strides = new int[3];
        for (int axis = 0; axis < 3; axis++) {
            if (array.stride(axis) < 0) {
                return null;
            }
            last += (array.size(axis) - 1) * array.stride(axis);
            shape[axis] = (int) array.size(axis);
            strides[axis] = (int) array.stride(axis);
        }
        ByteBuffer bytes = array.data().asNio();
        long end = (last + 1) * Float.BYTES;
        if (bytes == null || !bytes.isDirect() || end > bytes.capacity() || end > Integer.MAX_VALUE) {
            return null;
        }
        return new StridedRegion(bytes.order(FloatRegion.ORDER), (int) (array.offset() * Float.BYTES), shape, strides);
    }

    /**
     * The rows {@code [capacity, heads · size]} of a contiguous {@code region} seen as
     * {@code [heads, size, capacity]}: a key/value cache by head and feature.
     */
    static StridedRegion byHead(FloatRegion region, int capacity, int heads) {
        int width = region.length() / capacity;
        return new StridedRegion(region.bytes(), region.start(), new int[] {heads, width / heads, capacity}, new int[] {width / heads, 1, width});
    }

    /** The byte offset of element {@code [i, j, k]}. */
    int at(int i, int j, int k) {
        return start + (i * strides[0] + j * strides[1] + k * strides[2]) * Float.BYTES;
    }
}
