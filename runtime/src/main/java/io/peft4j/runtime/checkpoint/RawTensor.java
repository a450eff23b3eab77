package io.peft4j.runtime.checkpoint;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Arrays;

/**
 * A tensor as safetensors stores it: dtype, shape and little-endian bytes, read and written in plain
 * Java (no ND4J backend), for tools that only move and combine tensors (the command line).
 * Half-precision values are converted exactly one way and rounded to nearest-even the other.
 *
 * @param dtype its element type
 * @param shape its shape, row-major
 * @param data  its bytes, little-endian, position 0, {@code elements · dtype.bytes()} long
 */
public record RawTensor(TensorDtype dtype, long[] shape, ByteBuffer data) {

    public RawTensor {
        data = data.duplicate().order(ByteOrder.LITTLE_ENDIAN);
    }

    public long elements() {
        return Arrays.stream(shape).reduce(1, Math::multiplyExact);
    }

    /** Element {@code i} (row-major), exactly. */
    public double get(long i) {
        int at = Math.toIntExact(i * dtype.bytes());
        return switch (dtype) {
            case F64 -> data.getDouble(at);
            case F32 -> data.getFloat(at);
            case F16 -> halfToFloat(data.getShort(at));
            case BF16 -> Float.intBitsToFloat((data.getShort(at) & 0xFFFF) << 16);
        };
    }

    /** Every element, exactly. */
    public double[] toDoubles() {
        double[] values = new double[Math.toIntExact(elements())];
        for (int i = 0; i < values.length; i++) {
            values[i] = get(i);
        }
        return values;
    }

    /** {@code values} rounded once to {@code dtype} (nearest, ties to even). */
    public static RawTensor of(TensorDtype dtype, long[] shape, double[] values) {
        ByteBuffer bytes = ByteBuffer.allocate(Math.multiplyExact(values.length, dtype.bytes())).order(ByteOrder.LITTLE_ENDIAN);
        for (double value : values) {
            switch (dtype) {
                case F64 -> bytes.putDouble(value);
                case F32 -> bytes.putFloat((float) value);
                case F16 -> bytes.putShort(floatToHalf((float) value));
                case BF16 -> bytes.putShort(floatToBfloat16((float) value));
            }
        }
        return new RawTensor(dtype, shape.clone(), bytes.flip());
    }

    static float halfToFloat(short half) {
        int bits = half & 0xFFFF;
        int sign = (bits & 0x8000) << 16;
        int exponent = (bits >>> 10) & 0x1F;
        int mantissa = bits & 0x3FF;
        if (exponent == 0x1F) {
            return Float.intBitsToFloat(sign | 0x7F80_0000 | (mantissa << 13));
        }
        if (exponent == 0) {
            float magnitude = mantissa * 0x1p-24f; // subnormal: mantissa · 2^-24
            return sign == 0 ? magnitude : -magnitude;
        }
        return Float.intBitsToFloat(sign | ((exponent + 112) << 23) | (mantissa << 13));
    }

    static short floatToHalf(float value) {
        int bits = Float.floatToRawIntBits(value);
        int sign = (bits >>> 16) & 0x8000;
        int exponent = (bits >>> 23) & 0xFF;
        int mantissa = bits & 0x7F_FFFF;
        if (exponent == 0xFF) {
            return (short) (sign | 0x7C00 | (mantissa != 0 ? 0x200 | (mantissa >>> 13) : 0));
        }
        int halfExponent = exponent - 112;
        if (halfExponent >= 0x1F) {
            return (short) (sign | 0x7C00); // overflow to infinity
        }
        if (halfExponent <= 0) {
            if (halfExponent < -10) {
                return (short) sign; // underflow to zero
            }
            int full = mantissa | 0x80_0000;
            int shift = 14 - halfExponent;
            int half = full >>> shift;
            int rest = full & ((1 << shift) - 1);
            int halfway = 1 << (shift - 1);
            if (rest > halfway || (rest == halfway && (half & 1) == 1)) {
                half++;
            }
            return (short) (sign | half);
        }
        int half = (halfExponent << 10) | (mantissa >>> 13);
        int rest = mantissa & 0x1FFF;
        if (rest > 0x1000 || (rest == 0x1000 && (half & 1) == 1)) {
            half++; // may carry into the exponent, which is right (up to infinity)
        }
        return (short) (sign | half);
    }

    static short floatToBfloat16(float value) {
        int bits = Float.floatToRawIntBits(value);
        if ((bits & 0x7F80_0000) == 0x7F80_0000 && (bits & 0x7F_FFFF) != 0) {
            return (short) ((bits >>> 16) | 0x40); // a quiet NaN stays a NaN
        }
        int rounded = bits + 0x7FFF + ((bits >>> 16) & 1);
        return (short) (rounded >>> 16);
    }
}
