package io.peft4j.runtime.internal.vector;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * An fp32 array of rank 2 or more on the host, seen as a batch of matrices over its last two axes
 * (one matrix for rank 2),
 * with any non-negative strides (attention heads split by a permuted view) and optionally transposed.
 *
 * <p>Shapes: an array {@code [b₁, …, bₙ, p, q]} is {@code b₁ · … · bₙ} matrices {@code [p, q]}, or
 * {@code [q, p]} when transposed. Element {@code (i, j)} of matrix {@code item} lies at element
 * {@code batchOffsets[item] + i · rowStride + j · columnStride} from the array's first element.
 *
 * @param bytes the data buffer's memory, in the platform's byte order
 * @param start the byte offset of the array's first element
 * @param batchOffsets each matrix's offset in elements, in C order of the batch axes
 * @param rows rows of each matrix as this view sees it
 * @param columns columns of each matrix as this view sees it
 * @param rowStride elements between rows
 * @param columnStride elements between columns
 */
record BatchedMatrix(ByteBuffer bytes, int start, int[] batchOffsets, int rows, int columns, int rowStride, int columnStride) {
    /** The view of {@code array}, or {@code null} when it is not fp32 of rank 2 or more on the host with non-negative strides. */
    static BatchedMatrix of(INDArray array, boolean transposed) {
        if (array == null || array.dataType() != DataType.FLOAT || array.rank() < 2 || array.isEmpty() || array.length() > Integer.MAX_VALUE) {
            return null;
        }
        int rank = array.rank();
        long last = array.offset();
        for (int axis = 0; axis < rank; axis++) {
            if (array.stride(axis) < 0) {
                return null;
            }
            last += (array.size(axis) - 1) * array.stride(axis);
        }
        ByteBuffer bytes = array.data().asNio();
        long end = (last + 1) * Float.BYTES;
        if (bytes == null || !bytes.isDirect() || end > bytes.capacity() || end > Integer.MAX_VALUE) {
            return null;
        }
        int p = (int) array.size(rank - 2);
        int q = (int) array.size(rank - 1);
        int pStride = (int) array.stride(rank - 2);
        int qStride = (int) array.stride(rank - 1);
        int[] offsets = batchOffsets(array.shape(), array.stride());
        int start = (int) (array.offset() * Float.BYTES);
        return transposed
                ? new BatchedMatrix(bytes.order(FloatRegion.ORDER), start, offsets, q, p, qStride, pStride)
                : new BatchedMatrix(bytes.order(FloatRegion.ORDER), start, offsets, p, q, pStride, qStride);
    }

    /**
     * {@code array} broadcast to {@code shape} ({@code [b₁, …, bₙ, p, q]}) as numpy broadcasts, axes
     * aligned from the last, an axis of size 1 or a missing one repeated with stride 0 (an attention
     * mask {@code [batch, 1, 1, T]} over scores {@code [batch, heads, T, T]}); {@code null} when it
     * does not broadcast or is not fp32 on the host.
     */
    static BatchedMatrix broadcast(INDArray array, long[] shape) {
        int rank = shape.length;
        if (array == null || array.dataType() != DataType.FLOAT || rank < 3 || array.rank() > rank || array.isEmpty()
                || array.length() > Integer.MAX_VALUE) {
            return null;
        }
        long[] strides = new long[rank];
        long last = array.offset();
        for (int axis = 0; axis < rank; axis++) {
            int own = axis - (rank - array.rank());
            if (own < 0 || array.size(own) == 1) {
                continue;
            }
            if (array.size(own) != shape[axis] || array.stride(own) < 0) {
                return null;
            }
            strides[axis] = array.stride(own);
            last += (shape[axis] - 1) * strides[axis];
        }
        ByteBuffer bytes = array.data().asNio();
        long end = (last + 1) * Float.BYTES;
        if (bytes == null || !bytes.isDirect() || end > bytes.capacity() || end > Integer.MAX_VALUE) {
            return null;
        }
        int[] offsets = batchOffsets(shape, strides);
        return new BatchedMatrix(bytes.order(FloatRegion.ORDER), (int) (array.offset() * Float.BYTES), offsets, (int) shape[rank - 2],
                (int) shape[rank - 1], (int) strides[rank - 2], (int) strides[rank - 1]);
    }

    /** The same matrices transposed. */
    BatchedMatrix transposed() {
        return new BatchedMatrix(bytes, start, batchOffsets, columns, rows, columnStride, rowStride);
    }

    int batch() {
        return batchOffsets.length;
    }

    /** The byte offset of element {@code (row, column)} of matrix {@code item}. */
    int at(int item, int row, int column) {
        return start + (batchOffsets[item] + row * rowStride + column * columnStride) * Float.BYTES;
    }

    /**
     * A view of the whole memory as floats, for bulk copies by element index ({@link #index}); its
     * absolute reads change nothing, so threads may share it.
     */
    FloatBuffer floats() {
        ByteBuffer whole = bytes.duplicate().clear();
        return whole.order(FloatRegion.ORDER).asFloatBuffer();
    }

    /** The element index of element {@code (row, column)} of matrix {@code item} in {@link #floats()}. */
    int index(int item, int row, int column) {
        return start / Float.BYTES + batchOffsets[item] + row * rowStride + column * columnStride;
    }

    /** Each matrix's offset in elements, for batch axes {@code shape[0 .. rank − 2)} with these strides, in C order. */
    private static int[] batchOffsets(long[] shape, long[] strides) {
        int axes = shape.length - 2;
        int count = 1;
        for (int axis = 0; axis < axes; axis++) {
            count *= (int) shape[axis];
        }
        int[] offsets = new int[count];
        int[] index = new int[axes];
        for (int item = 0; item < count; item++) {
            long offset = 0;
            for (int axis = 0; axis < axes; axis++) {
                offset += index[axis] * strides[axis];
            }
            offsets[item] = (int) offset;
            for (int axis = axes - 1; axis >= 0 && ++index[axis] == shape[axis]; axis--) {
                index[axis] = 0;
            }
        }
        return offsets;
    }
}
