package io.peft4j.runtime.checkpoint;

import java.util.Arrays;
import java.util.Optional;
import org.nd4j.linalg.api.buffer.DataType;

/** The safetensors element types peft4j reads (and, for F32 and BF16, writes). */
public enum TensorDtype {
    F64(DataType.DOUBLE, 8),
    F32(DataType.FLOAT, 4),
    F16(DataType.HALF, 2),
    BF16(DataType.BFLOAT16, 2);

    private final DataType nd4jType;
    private final int bytes;

    TensorDtype(DataType nd4jType, int bytes) {
        this.nd4jType = nd4jType;
        this.bytes = bytes;
    }

    public DataType nd4jType() {
        return nd4jType;
    }

    /** Bytes per element. */
    public int bytes() {
        return bytes;
    }

    /** The dtype named {@code name} in a safetensors header, if peft4j supports it. */
    public static Optional<TensorDtype> named(String name) {
        return Arrays.stream(values()).filter(dtype -> dtype.name().equals(name)).findFirst();
    }
}
