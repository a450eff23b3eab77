package io.peft4j.runtime.internal.vector;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.nd4j.linalg.api.ndarray.INDArray;

/** How the kernel tests compare a kernel's result with libnd4j's. */
final class KernelAssertions {
    private KernelAssertions() {
    }

    /** Within {@code tolerance} of the larger magnitude of the two results (at least 1), element by element in C order. */
    static void assertClose(INDArray expected, INDArray actual, double tolerance, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what);
        float[] e = expected.dup('c').data().asFloat();
        float[] a = actual.dup('c').data().asFloat();
        double scale = Math.max(1.0, Math.max(expected.amaxNumber().doubleValue(), actual.amaxNumber().doubleValue()));
        for (int i = 0; i < e.length; i++) {
            assertTrue(Math.abs(e[i] - a[i]) <= tolerance * scale, what + ": element " + i + " is " + a[i] + ", libnd4j's " + e[i]);
        }
    }
}
