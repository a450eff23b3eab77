package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.ReplayKernels;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Adam's step for one fp32 parameter, as libnd4j's {@code adam_updater} computes it, in one pass:
 * {@code m ← β₁m + g(1 − β₁)}, {@code v ← β₂v + g·g(1 − β₂)}, {@code g ← m·α̂ / (√v + ε)} with
 * {@code α̂ = α√(1 − β₂ᵗ) / (1 − β₁ᵗ)}; then, after the trainer's listeners have seen the update,
 * the parameter's step {@code p ← p − g}. The update pass also tells whether every update is finite,
 * which {@link io.peft4j.runtime.internal.NonFiniteGuard} would otherwise learn from a sum per parameter.
 *
 * <p>Shapes: parameter, gradient and both moments hold the same number of elements, each contiguous
 * in C order (the moments are views of the updater's state array).
 *
 * <p>Why not libnd4j: its updater and the parameter's subtraction are two native calls per parameter,
 * 20 ms for the sample transformer's 68 parameters (3.7 M values) against under 2 ms here
 * (BENCHMARKS.md, change 25). Each value is computed with the operations, in the order and in the
 * precision, that libnd4j's loop uses, so moments, updates and parameters are its bits.
 */
final class AdamKernel implements ReplayKernels.ParameterStep {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    /** Elements of one parallel chunk: large enough that waking a worker pays. */
    private static final int GRAIN = 16_384;

    private final FloatRegion parameter;
    private final FloatRegion gradient;
    private final FloatRegion m;
    private final FloatRegion v;
    private float beta1;
    private float beta2;
    private float stepSize;
    private float epsilon;
    /** Set by any part of {@link #update} that wrote a NaN or an infinity; only ever set to true while it runs. */
    private volatile boolean nonFinite;

    AdamKernel(FloatRegion parameter, FloatRegion gradient, FloatRegion m, FloatRegion v) {
        int length = parameter.length();
        if (gradient.length() != length || m.length() != length || v.length() != length) {
            throw new IllegalArgumentException("Adam step: parameter of " + length + " values, gradient of " + gradient.length()
                    + ", moments of " + m.length() + " and " + v.length());
        }
        this.parameter = parameter;
        this.gradient = gradient;
        this.m = m;
        this.v = v;
    }

    @Override
    public boolean update(double learningRate, double beta1, double beta2, double epsilon, int iteration) {
        this.beta1 = (float) beta1;
        this.beta2 = (float) beta2;
        this.epsilon = (float) epsilon;
        this.stepSize = stepSize((float) learningRate, this.beta1, this.beta2, this.epsilon, iteration);
        nonFinite = false;
        run(parameter.length(), this::moments);
        return !nonFinite;
    }

    @Override
    public void step() {
        run(parameter.length(), this::subtract);
    }

    /**
     * {@code α√(1 − β₂ᵗ) / (1 − β₁ᵗ)} at step {@code t = iteration + 1}, as libnd4j rounds it (powers
     * and root in fp32, the division in fp64), or {@code ε} where that is not a finite non-zero number.
     */
    static float stepSize(float learningRate, float beta1, float beta2, float epsilon, int iteration) {
        float t = (float) iteration + 1f;
        float beta1T = (float) Math.pow(beta1, t);
        float beta2T = (float) Math.pow(beta2, t);
        float root = (float) Math.sqrt((float) (1.0 - beta2T));
        float size = (float) ((learningRate * root) / (1.0 - beta1T));
        return Float.isNaN(size) || Float.isInfinite(size) || size == 0f ? epsilon : size;
    }

    private static void run(int length, KernelThreads.Body body) {
        KernelThreads.shared().forRange(length, GRAIN, length, body);
    }

    private void moments(int from, int to) {
        float keep1 = 1 - beta1;
        float keep2 = 1 - beta2;
        // u · 0 is 0 for every finite u and NaN otherwise: one multiply-add per vector tells whether all were finite
        FloatVector zero = FloatVector.zero(SPECIES);
        FloatVector check = zero;
        float scalarCheck = 0f;
        int i = from;
        int end = from + (to - from) / LANES * LANES;
        for (; i < end; i += LANES) {
            FloatVector g = load(gradient, i);
            FloatVector newM = load(m, i).mul(beta1).add(g.mul(keep1));
            FloatVector newV = load(v, i).mul(beta2).add(g.mul(g).mul(keep2));
            FloatVector update = newM.mul(stepSize).div(newV.sqrt().add(epsilon));
            store(newM, m, i);
            store(newV, v, i);
            store(update, gradient, i);
            check = update.fma(zero, check);
        }
        for (; i < to; i++) {
            float g = gradient.get(i);
            float newM = beta1 * m.get(i) + g * keep1;
            float newV = beta2 * v.get(i) + g * g * keep2;
            m.put(i, newM);
            v.put(i, newV);
            float update = newM * stepSize / ((float) Math.sqrt(newV) + epsilon);
            gradient.put(i, update);
            scalarCheck += update * 0f;
        }
        if (Float.isNaN(check.reduceLanes(VectorOperators.ADD) + scalarCheck)) {
            nonFinite = true;
        }
    }

    private void subtract(int from, int to) {
        int i = from;
        int end = from + (to - from) / LANES * LANES;
        for (; i < end; i += LANES) {
            store(load(parameter, i).sub(load(gradient, i)), parameter, i);
        }
        for (; i < to; i++) {
            parameter.put(i, parameter.get(i) - gradient.get(i));
        }
    }

    private static FloatVector load(FloatRegion region, int index) {
        return FloatVector.fromByteBuffer(SPECIES, region.bytes(), region.at(index), FloatRegion.ORDER);
    }

    private static void store(FloatVector value, FloatRegion region, int index) {
        value.intoByteBuffer(region.bytes(), region.at(index), FloatRegion.ORDER);
    }
}
