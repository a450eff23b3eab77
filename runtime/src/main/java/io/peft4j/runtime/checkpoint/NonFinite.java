package io.peft4j.runtime.checkpoint;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * Finds NaN and ±Inf in raw little-endian tensor bytes by their bit patterns (all exponent bits set),
 * before any cast: ND4J's {@code isNaN} is never true on HALF arrays and on BFLOAT16 only for one NaN
 * pattern, and a widening cast must not be what decides.
 */
final class NonFinite {

    private NonFinite() {
    }

    /** The index of the first NaN or infinite element of {@code bytes} read as {@code dtype}, or −1. */
    static long firstIndex(TensorDtype dtype, ByteBuffer bytes) {
        ByteBuffer data = bytes.duplicate().order(ByteOrder.LITTLE_ENDIAN);
        long count = data.remaining() / dtype.bytes();
        for (long i = 0; i < count; i++) {
            int at = (int) (i * dtype.bytes()) + data.position();
            boolean nonFinite = switch (dtype) {
                case F64 -> (data.getLong(at) & 0x7FF0_0000_0000_0000L) == 0x7FF0_0000_0000_0000L;
                case F32 -> (data.getInt(at) & 0x7F80_0000) == 0x7F80_0000;
                case F16 -> (data.getShort(at) & 0x7C00) == 0x7C00;
                case BF16 -> (data.getShort(at) & 0x7F80) == 0x7F80;
            };
            if (nonFinite) {
                return i;
            }
        }
        return -1;
    }
}
