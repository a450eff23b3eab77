package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.IntVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * peft4j's fp32 exponential, {@code e^x}, over an array and as a scalar, with the same bits either
 * way and whatever the JIT has compiled: the softmax of {@link SoftmaxKernel} and of
 * {@link AttentionKernel}, which must agree bit for bit, and the decoding attention use it.
 *
 * <p>Why not the Vector API's {@code EXP}: compiled by C2 it calls the JDK's SVML routines, while
 * interpreted or compiled by C1 it falls back to {@code Math.exp} per lane, and the two differ in
 * the last bit for about one value in forty. A kernel then computed different bits while it warmed
 * up than after, so two kernels that compute the same values (a fused pass and the op-by-op replay
 * it replaces, BENCHMARKS.md change 27) agreed only once both were compiled. Here every step is an
 * IEEE operation (fused multiply-adds included), which Java evaluates the same in every tier. SVML
 * is faster (0.24–0.26 ns a value against 0.34–0.37 here, one thread), so {@code exp},
 * {@code sigmoid}, the GELUs and erf in {@link UnaryKernel} and {@link ExactGeluKernel} keep it.
 *
 * <p>Method: {@code x = n·ln 2 + r} with {@code n} the nearest integer to {@code x / ln 2} and
 * {@code |r| ≤ ln 2 / 2} (ln 2 split in two so that {@code r} is exact to about 2⁻³²), {@code e^r} by
 * its Taylor polynomial of degree 7 (truncation under 5e-9 relative), times {@code 2ⁿ} built from
 * its exponent bits, in two factors so that {@code n = 128} does not overflow them. Results are
 * within 2 ulp of the exact value (checked against {@code Math.exp} in the tests); below
 * {@link #LOWEST} it returns 0 (no subnormals), above {@link #HIGHEST} infinity, for NaN NaN.
 */
final class Exp {
    /** Below this, {@code e^x} is under the smallest normal float; the result is 0. */
    static final float LOWEST = -87.33654f;
    /** Above this, {@code e^x} overflows fp32; the result is infinity. */
    static final float HIGHEST = 88.72284f;
    private static final float LOG2_E = 1.44269504f;
    private static final float LN2_HIGH = 0.693359375f;
    private static final float LN2_LOW = -2.12194440e-4f;
    /** 1.5 · 2²³: adding and subtracting it rounds a float of magnitude under 2²² to the nearest integer. */
    private static final float ROUNDER = 12582912f;
    private static final int ROUNDER_BITS = Float.floatToRawIntBits(ROUNDER);
    /** The Taylor coefficients 1/k! of e^r for k = 2 … 7 (those of k = 0 and 1 are 1). */
    private static final float C2 = 1f / 2;
    private static final float C3 = 1f / 6;
    private static final float C4 = 1f / 24;
    private static final float C5 = 1f / 120;
    private static final float C6 = 1f / 720;
    private static final float C7 = 1f / 5040;

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    private Exp() {
    }

    /**
     * {@code values[i] = e^values[i]} for {@code i} in {@code [from, to)}. The vector arithmetic is
     * written out in this loop rather than in a method taking and returning vectors: the JIT does not
     * always inline such a method (it is "too large" at some call sites), and a vector that crosses a
     * call it did not inline is boxed on the heap, 5–10× slower (see {@link UnaryKernel}).
     */
    static void inPlace(float[] values, int from, int to) {
        FloatVector lowest = FloatVector.broadcast(SPECIES, LOWEST);
        FloatVector highest = FloatVector.broadcast(SPECIES, HIGHEST);
        FloatVector zero = FloatVector.zero(SPECIES);
        FloatVector infinity = FloatVector.broadcast(SPECIES, Float.POSITIVE_INFINITY);
        int i = from;
        for (int bound = from + SPECIES.loopBound(to - from); i < bound; i += SPECIES.length()) {
            FloatVector x = FloatVector.fromArray(SPECIES, values, i);
            FloatVector clamped = x.max(lowest).min(highest);
            FloatVector shifted = clamped.mul(LOG2_E).add(ROUNDER);
            FloatVector n = shifted.sub(ROUNDER);
            FloatVector r = n.fma(FloatVector.broadcast(SPECIES, -LN2_HIGH), clamped);
            r = n.fma(FloatVector.broadcast(SPECIES, -LN2_LOW), r);
            FloatVector p = r.fma(C7, C6);
            p = p.fma(r, FloatVector.broadcast(SPECIES, C5));
            p = p.fma(r, FloatVector.broadcast(SPECIES, C4));
            p = p.fma(r, FloatVector.broadcast(SPECIES, C3));
            p = p.fma(r, FloatVector.broadcast(SPECIES, C2));
            p = p.fma(r, FloatVector.broadcast(SPECIES, 1f));
            p = p.fma(r, FloatVector.broadcast(SPECIES, 1f));
            // the rounding constant's low bits hold n: its bits minus the constant's are n as an integer
            IntVector exponent = shifted.reinterpretAsInts().sub(ROUNDER_BITS);
            IntVector half = exponent.lanewise(VectorOperators.ASHR, 1);
            FloatVector first = half.add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
            FloatVector second = exponent.sub(half).add(127).lanewise(VectorOperators.LSHL, 23).reinterpretAsFloats();
            // NaN needs no mask: max and min keep it, and every step after it
            p.mul(first).mul(second)
                    .blend(zero, x.compare(VectorOperators.LT, LOWEST))
                    .blend(infinity, x.compare(VectorOperators.GT, HIGHEST))
                    .intoArray(values, i);
        }
        for (; i < to; i++) {
            values[i] = of(values[i]);
        }
    }

    static float of(float x) {
        if (Float.isNaN(x)) {
            return x;
        }
        if (x < LOWEST) {
            return 0f;
        }
        if (x > HIGHEST) {
            return Float.POSITIVE_INFINITY;
        }
        float n = x * LOG2_E + ROUNDER - ROUNDER;
        float r = Math.fma(n, -LN2_HIGH, x);
        r = Math.fma(n, -LN2_LOW, r);
        float p = Math.fma(r, C7, C6);
        p = Math.fma(p, r, C5);
        p = Math.fma(p, r, C4);
        p = Math.fma(p, r, C3);
        p = Math.fma(p, r, C2);
        p = Math.fma(p, r, 1f);
        p = Math.fma(p, r, 1f);
        int exponent = (int) n;
        int half = exponent >> 1;
        return p * Float.intBitsToFloat((half + 127) << 23) * Float.intBitsToFloat((exponent - half + 127) << 23);
    }
}
