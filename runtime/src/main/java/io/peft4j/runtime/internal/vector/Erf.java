package io.peft4j.runtime.internal.vector;

/**
 * The constants of peft4j's error function, within 2e-7 of the exact value everywhere, and its
 * scalar form; {@link UnaryKernel} evaluates the same on vectors.
 *
 * <p>The JDK's Vector API has no {@code ERF}. Below {@link #SERIES_LIMIT} in magnitude this is the
 * Maclaurin series {@code erf(x) = 2/√π · Σ (−1)ⁿ x²ⁿ⁺¹ / (n! (2n+1))} to n = 10 (truncation error
 * under 2e-9, and exact to rounding near 0, where the relative error matters); from there on,
 * Abramowitz and Stegun's approximation 7.1.26, {@code 1 − (a₁t + a₂t² + a₃t³ + a₄t⁴ + a₅t⁵) e^(−x²)}
 * with {@code t = 1 / (1 + p|x|)}, whose absolute error is at most 1.5e-7, and the sign of {@code x}.
 */
final class Erf {
    static final float SERIES_LIMIT = 1f;
    /** 2/√π · (−1)ⁿ / (n! (2n+1)) for n = 0 … 10. */
    static final float[] SERIES = series(11);
    static final float P = 0.3275911f;
    static final float A1 = 0.254829592f;
    static final float A2 = -0.284496736f;
    static final float A3 = 1.421413741f;
    static final float A4 = -1.453152027f;
    static final float A5 = 1.061405429f;

    private Erf() {
    }

    static float of(float x) {
        float magnitude = Math.abs(x);
        float squared = x * x;
        if (magnitude < SERIES_LIMIT) {
            float sum = SERIES[SERIES.length - 1];
            for (int n = SERIES.length - 2; n >= 0; n--) {
                sum = sum * squared + SERIES[n];
            }
            return sum * x;
        }
        float t = 1f / (magnitude * P + 1f);
        float polynomial = ((((t * A5 + A4) * t + A3) * t + A2) * t + A1) * t;
        float far = 1f - polynomial * (float) Math.exp(-squared);
        return x < 0 ? -far : far;
    }

    private static float[] series(int terms) {
        float[] coefficients = new float[terms];
        double factorial = 1;
        for (int n = 0; n < terms; n++) {
            if (n > 0) {
                factorial *= n;
            }
            coefficients[n] = (float) ((n % 2 == 0 ? 1 : -1) * 2 / Math.sqrt(Math.PI) / (factorial * (2 * n + 1)));
        }
        return coefficients;
    }
}
