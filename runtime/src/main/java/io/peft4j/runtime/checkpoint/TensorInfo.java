package io.peft4j.runtime.checkpoint;

import java.util.Arrays;

/**
 * One entry of a safetensors header.
 *
 * @param name  the tensor's key
 * @param dtype its element type
 * @param shape its shape, row-major
 * @param begin first byte of its data, relative to the end of the header
 * @param end   one past its last byte, relative to the end of the header
 */
public record TensorInfo(String name, TensorDtype dtype, long[] shape, long begin, long end) {

    /** The element count; throws {@link ArithmeticException} if it overflows 64 bits (readers check this first). */
    public long elements() {
        return Arrays.stream(shape).reduce(1, Math::multiplyExact);
    }

    @Override
    public String toString() {
        return name + " " + dtype + " " + Arrays.toString(shape);
    }
}
