package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * {@code y = f(x)} element by element over contiguous fp32 arrays of one length; {@code y} may be
 * {@code x}.
 *
 * <p>Each function has its own loop with its arithmetic written inside it. The Vector API compiles a
 * lane-wise operation to SIMD instructions only when its operator is a constant where it is called,
 * and a vector passed to or returned from a method that the JIT did not inline is boxed on the heap;
 * a shared loop calling a per-function helper ran 5–10× slower inside a training step than in
 * isolation. The last {@code length mod lanes} elements are computed one by one, and so are arrays
 * shorter than {@link KernelWarmUp#VECTOR_FROM} ({@link KernelWarmUp#TRANSCENDENTAL_VECTOR_FROM} for
 * the functions built on the exponential). {@code exp}, {@code sigmoid}, ND4J's sigmoid-form
 * {@code gelu} and its {@code _geluderivative} use the JDK's vectorised {@code EXP} ({@code TANH} and
 * {@code LOG} ran slower than libnd4j's in JDK 17 and are left to it, and with them
 * {@code precise_gelu}); {@code erf} is {@link Erf}'s approximation.
 */
final class UnaryKernel implements Runnable {
    /** The functions, with the libnd4j op names they replace and a relative cost per element. */
    enum Function {
        EXP("exp", 8, true), SIGMOID("sigmoid", 10, true), GELU("gelu", 11, true), GELU_DERIVATIVE("_geluderivative", 12, true),
        ERF("erf", 12, true), NEG("neg", 1, false), SQRT("sqrt", 2, false), SQUARE("square", 1, false), ABS("abs", 1, false);

        final String opName;
        final int cost;
        /** Arrays from this length run the vector loop. */
        final int vectorFrom;

        Function(String opName, int cost, boolean exponential) {
            this.opName = opName;
            this.cost = cost;
            this.vectorFrom = exponential ? KernelWarmUp.TRANSCENDENTAL_VECTOR_FROM : KernelWarmUp.VECTOR_FROM;
        }

        static Function named(String opName) {
            for (Function function : values()) {
                if (function.opName.equals(opName)) {
                    return function;
                }
            }
            return null;
        }
    }

    /** The sigmoid's slope in ND4J's {@code gelu}, {@code x · σ(1.702 x)}, and in its {@code _geluderivative}. */
    static final float GELU_SLOPE = 1.702f;

    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();

    private final Function function;
    private final FloatRegion x;
    private final FloatRegion y;

    UnaryKernel(Function function, FloatRegion x, FloatRegion y) {
        if (x.length() != y.length()) {
            throw new IllegalArgumentException(function.opName + ": input of " + x.length() + " elements, output of " + y.length());
        }
        this.function = function;
        this.x = x;
        this.y = y;
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(x.length(), LANES, (long) x.length() * function.cost, this::run);
    }

    private void run(int from, int to) {
        if (x.length() < function.vectorFrom) {
            for (int i = from; i < to; i++) {
                y.put(i, scalar(x.get(i)));
            }
            return;
        }
        int bound = from + SPECIES.loopBound(to - from);
        switch (function) {
            case EXP -> exp(from, bound);
            case SIGMOID -> sigmoid(from, bound);
            case GELU -> gelu(from, bound);
            case GELU_DERIVATIVE -> geluDerivative(from, bound);
            case ERF -> erf(from, bound);
            case NEG -> neg(from, bound);
            case SQRT -> sqrt(from, bound);
            case SQUARE -> square(from, bound);
            case ABS -> abs(from, bound);
            default -> throw new AssertionError(function);
        }
        for (int i = bound; i < to; i++) {
            y.put(i, scalar(x.get(i)));
        }
    }

    private void exp(int from, int to) {
        for (int i = from; i < to; i += LANES) {
            load(i).lanewise(VectorOperators.EXP).intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private void sigmoid(int from, int to) {
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        for (int i = from; i < to; i += LANES) {
            // libnd4j's form: 1 / (1 + e^-x)
            one.div(load(i).neg().lanewise(VectorOperators.EXP).add(1f)).intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private void gelu(int from, int to) {
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        for (int i = from; i < to; i += LANES) {
            // libnd4j's form: x · σ(1.702 x)
            FloatVector v = load(i);
            FloatVector sigmoid = one.div(v.mul(-GELU_SLOPE).lanewise(VectorOperators.EXP).add(1f));
            v.mul(sigmoid).intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private void geluDerivative(int from, int to) {
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        for (int i = from; i < to; i += LANES) {
            // σ(t) · (1 + t · (1 − σ(t))) with t = 1.702 x; for t ≥ 0, 1 − σ(t) is e^-t · σ(t), which keeps
            // the digits that 1 − σ(t) cancels (and e^-t cannot overflow there)
            FloatVector t = load(i).mul(GELU_SLOPE);
            FloatVector exp = t.neg().lanewise(VectorOperators.EXP);
            FloatVector sigmoid = one.div(exp.add(1f));
            FloatVector complement = exp.mul(sigmoid).blend(one.sub(sigmoid), t.compare(VectorOperators.LT, 0f));
            sigmoid.mul(t.mul(complement).add(1f)).intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private void erf(int from, int to) {
        FloatVector one = FloatVector.broadcast(SPECIES, 1f);
        for (int i = from; i < to; i += LANES) {
            FloatVector v = load(i);
            FloatVector magnitude = v.abs();
            FloatVector squared = v.mul(v);
            FloatVector series = FloatVector.broadcast(SPECIES, Erf.SERIES[Erf.SERIES.length - 1]);
            for (int n = Erf.SERIES.length - 2; n >= 0; n--) {
                series = series.mul(squared).add(Erf.SERIES[n]);
            }
            FloatVector t = one.div(magnitude.mul(Erf.P).add(1f));
            FloatVector polynomial = t.mul(Erf.A5).add(Erf.A4).mul(t).add(Erf.A3).mul(t).add(Erf.A2).mul(t).add(Erf.A1).mul(t);
            FloatVector far = one.sub(polynomial.mul(squared.neg().lanewise(VectorOperators.EXP)));
            far = far.blend(far.neg(), v.compare(VectorOperators.LT, 0f));
            far.blend(series.mul(v), magnitude.compare(VectorOperators.LT, Erf.SERIES_LIMIT)).intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private void neg(int from, int to) {
        for (int i = from; i < to; i += LANES) {
            load(i).neg().intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private void sqrt(int from, int to) {
        for (int i = from; i < to; i += LANES) {
            load(i).sqrt().intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private void square(int from, int to) {
        for (int i = from; i < to; i += LANES) {
            FloatVector v = load(i);
            v.mul(v).intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private void abs(int from, int to) {
        for (int i = from; i < to; i += LANES) {
            load(i).abs().intoByteBuffer(y.bytes(), y.at(i), FloatRegion.ORDER);
        }
    }

    private FloatVector load(int index) {
        return FloatVector.fromByteBuffer(SPECIES, x.bytes(), x.at(index), FloatRegion.ORDER);
    }

    private float scalar(float value) {
        return switch (function) {
            case EXP -> (float) Math.exp(value);
            case SIGMOID -> 1f / (1f + (float) Math.exp(-value));
            case GELU -> value * (1f / (1f + (float) Math.exp(-(GELU_SLOPE * value))));
            case GELU_DERIVATIVE -> {
                float t = GELU_SLOPE * value;
                float exp = (float) Math.exp(-t);
                float sigmoid = 1f / (1f + exp);
                yield sigmoid * (1f + t * (t < 0f ? 1f - sigmoid : exp * sigmoid));
            }
            case ERF -> Erf.of(value);
            case NEG -> -value;
            case SQRT -> (float) Math.sqrt(value);
            case SQUARE -> value * value;
            case ABS -> Math.abs(value);
        };
    }
}
