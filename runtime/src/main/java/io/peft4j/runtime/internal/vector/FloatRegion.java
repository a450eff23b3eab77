package io.peft4j.runtime.internal.vector;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.FloatBuffer;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The host memory of an fp32 array whose elements lie contiguously in C order: a direct byte buffer
 * over the array's data buffer and the byte offset of its first element.
 *
 * <p>Only arrays on the host qualify (ND4J's CPU backend); {@link #of} refuses any other array.
 *
 * @param bytes the data buffer's memory, in the platform's byte order
 * @param start the byte offset of element 0
 * @param length the number of elements
 */
record FloatRegion(ByteBuffer bytes, int start, int length) {
    static final ByteOrder ORDER = ByteOrder.nativeOrder();

    /** The region of {@code array}, or {@code null} when it is not fp32, not contiguous in C order, or too large for a byte buffer. */
    static FloatRegion of(INDArray array) {
        if (array == null || array.dataType() != DataType.FLOAT || array.isEmpty() || !isCContiguous(array)) {
            return null;
        }
        long start = array.offset() * Float.BYTES;
        long end = start + array.length() * Float.BYTES;
        ByteBuffer bytes = array.data().asNio();
        if (bytes == null || !bytes.isDirect() || end > bytes.capacity() || end > Integer.MAX_VALUE) {
            return null;
        }
        return new FloatRegion(bytes.order(ORDER), (int) start, (int) array.length());
    }

    /** The byte offset of element {@code index}. */
    int at(int index) {
        return start + index * Float.BYTES;
    }

    /**
     * A view of the whole memory as floats, for bulk copies by element index ({@code start / 4 + index});
     * its absolute reads and writes move no position, so threads may share it.
     */
    FloatBuffer floats() {
        return bytes.duplicate().clear().order(ORDER).asFloatBuffer();
    }

    float get(int index) {
        return bytes.getFloat(at(index));
    }

    void put(int index, float value) {
        bytes.putFloat(at(index), value);
    }

    private static boolean isCContiguous(INDArray array) {
        if (array.length() == 1) {
            return true;
        }
        long[] shape = array.shape();
        long[] strides = array.stride();
        long expected = 1;
        for (int axis = shape.length - 1; axis >= 0; axis--) {
            if (shape[axis] != 1 && strides[axis] != expected) {
                return false;
            }
            expected *= shape[axis];
        }
        return true;
    }
}
