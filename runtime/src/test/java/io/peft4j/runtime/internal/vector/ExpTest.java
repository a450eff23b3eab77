package io.peft4j.runtime.internal.vector;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Arrays;
import java.util.Random;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;
import org.junit.jupiter.api.Test;

/**
 * {@link Exp} is within 2 ulp of {@code e^x} over fp32's range, gives 0, infinity and NaN at the
 * edges, and computes the same bits over an array (in vectors, with a tail) as one value at a time:
 * the scalar form is plain Java arithmetic, which every JIT tier evaluates alike, so the vector
 * form's bits do not depend on what the JIT has compiled either.
 */
class ExpTest {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;

    @Test
    void isWithinTwoUlpAndTheVectorsMatchTheScalarBitForBit() {
        float[] x = samples();
        float[] vectorised = x.clone();
        Exp.inPlace(vectorised, 0, vectorised.length);
        double largestError = 0;
        for (int i = 0; i < x.length; i++) {
            float scalar = Exp.of(x[i]);
            assertEquals(Float.floatToRawIntBits(scalar), Float.floatToRawIntBits(vectorised[i]), "e^" + x[i] + " on a vector and alone");
            double exact = Math.exp(x[i]);
            if (exact >= Float.MIN_NORMAL && exact <= Float.MAX_VALUE) {
                largestError = Math.max(largestError, Math.abs(scalar - exact) / Math.ulp((float) exact));
            }
        }
        assertTrue(largestError <= 2, "largest error " + largestError + " ulp");
    }

    @Test
    void edgesGiveZeroInfinityAndNaN() {
        assertEquals(0f, Exp.of(Float.NEGATIVE_INFINITY));
        assertEquals(0f, Exp.of(-10_000f));
        assertEquals(Float.POSITIVE_INFINITY, Exp.of(Float.POSITIVE_INFINITY));
        assertEquals(Float.POSITIVE_INFINITY, Exp.of(89f));
        assertTrue(Float.isNaN(Exp.of(Float.NaN)));
        assertEquals(1f, Exp.of(0f));
        assertEquals(1f, Exp.of(-0f));
        float nearTheTop = Exp.of(88.72f);
        assertTrue(nearTheTop > 3.3e38f && nearTheTop < Float.POSITIVE_INFINITY, "e^88.72 = " + nearTheTop);
        float[] edges = {Float.NEGATIVE_INFINITY, -10_000f, Float.POSITIVE_INFINITY, 89f, Float.NaN, 0f, 88.72f, -87f};
        float[] vectorised = Arrays.copyOf(edges, SPECIES.length() * ((edges.length + SPECIES.length() - 1) / SPECIES.length()));
        Exp.inPlace(vectorised, 0, vectorised.length);
        for (int i = 0; i < edges.length; i++) {
            assertEquals(Float.floatToIntBits(Exp.of(edges[i])), Float.floatToIntBits(vectorised[i]), "e^" + edges[i]);
        }
    }

    /** A sweep from below the smallest normal result to above the largest, then random values at three scales. */
    private static float[] samples() {
        Random random = new Random(5);
        float[] x = new float[(1 << 16) + 5]; // a tail after the last whole vector
        for (int i = 0; i < x.length; i++) {
            if (i < 2_000) {
                x[i] = -90f + i * 0.09f;
            } else {
                float scale = i % 3 == 0 ? 88f : i % 3 == 1 ? 10f : 0.5f;
                x[i] = (random.nextFloat() * 2 - 1) * scale;
            }
        }
        return x;
    }
}
