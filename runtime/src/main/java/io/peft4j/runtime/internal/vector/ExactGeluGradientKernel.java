package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.ExactGelu;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * The gradient of BERT's written-out exact GELU ({@link ExactGeluKernel}) with respect to its input,
 * in one pass, as SameDiff's differentiation computes it in six ops:
 * {@code dx = (g ⊙ p) · 0.5 + ((c ⊙ e) ⊙ (g ⊙ h)) / √2}, with {@code g} the output's gradient,
 * {@code h = 0.5 x}, {@code p = erf(x / √2) + 1}, {@code e = e^−(x / √2)²} and {@code c} the array of
 * {@code 2/√π} that the derivative of {@code erf} multiplies by; bit for bit what those ops compute.
 *
 * <p>Shapes: all six arrays of one length, contiguous. Six arrays pass through memory instead of
 * eighteen.
 */
final class ExactGeluGradientKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();

    private final FloatRegion gradient;
    private final FloatRegion half;
    private final FloatRegion onePlusErf;
    private final FloatRegion gaussian;
    private final FloatRegion coefficient;
    private final FloatRegion result;
    private final float halfScalar;
    private final float scale;
    private final boolean divideByScale;

    ExactGeluGradientKernel(FloatRegion gradient, FloatRegion half, FloatRegion onePlusErf, FloatRegion gaussian, FloatRegion coefficient,
                            FloatRegion result, ExactGelu.Scalars scalars) {
        int length = gradient.length();
        for (FloatRegion region : new FloatRegion[] {half, onePlusErf, gaussian, coefficient, result}) {
            if (region.length() != length) {
                throw new IllegalArgumentException("exact GELU gradient: a gradient of " + length + " elements and an operand of " + region.length());
            }
        }
        this.gradient = gradient;
        this.half = half;
        this.onePlusErf = onePlusErf;
        this.gaussian = gaussian;
        this.coefficient = coefficient;
        this.result = result;
        this.halfScalar = scalars.half();
        this.scale = scalars.scale();
        this.divideByScale = scalars.divideByScale();
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(gradient.length(), LANES, 3L * gradient.length(), this::run);
    }

    private void run(int from, int to) {
        int bound = gradient.length() < KernelWarmUp.VECTOR_FROM ? from : from + SPECIES.loopBound(to - from);
        for (int i = from; i < bound; i += LANES) {
            FloatVector g = FloatVector.fromByteBuffer(SPECIES, gradient.bytes(), gradient.at(i), FloatRegion.ORDER);
            FloatVector h = FloatVector.fromByteBuffer(SPECIES, half.bytes(), half.at(i), FloatRegion.ORDER);
            FloatVector p = FloatVector.fromByteBuffer(SPECIES, onePlusErf.bytes(), onePlusErf.at(i), FloatRegion.ORDER);
            FloatVector e = FloatVector.fromByteBuffer(SPECIES, gaussian.bytes(), gaussian.at(i), FloatRegion.ORDER);
            FloatVector c = FloatVector.fromByteBuffer(SPECIES, coefficient.bytes(), coefficient.at(i), FloatRegion.ORDER);
            FloatVector throughHalf = g.mul(p).mul(halfScalar);
            FloatVector throughErf = c.mul(e).mul(g.mul(h));
            FloatVector scaled = divideByScale ? throughErf.div(scale) : throughErf.mul(scale);
            throughHalf.add(scaled).intoByteBuffer(result.bytes(), result.at(i), FloatRegion.ORDER);
        }
        for (int i = bound; i < to; i++) {
            float g = gradient.get(i);
            float throughHalf = g * onePlusErf.get(i) * halfScalar;
            float throughErf = coefficient.get(i) * gaussian.get(i) * (g * half.get(i));
            result.put(i, throughHalf + (divideByScale ? throughErf / scale : throughErf * scale));
        }
    }
}
