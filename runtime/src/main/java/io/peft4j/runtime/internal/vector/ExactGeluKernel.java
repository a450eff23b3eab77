package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.ExactGelu;
import java.util.Map;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The exact (erf) GELU written out as BERT's code writes it, {@code y = (0.5 x) · (erf(x / √2) + 1)},
 * and the parts of it that a step reads elsewhere, in one pass over {@code x}; each part as the op
 * that computed it alone would ({@link ExactGelu}).
 *
 * <p>Shapes: {@code x} and every part of one length, contiguous. Parts are written only when given:
 * {@code HALF} ({@code 0.5 x}), {@code SCALED} ({@code x / √2}), {@code ERF}, {@code ONE_PLUS_ERF},
 * {@code SQUARED} ({@code (x / √2)²}), {@code NEGATED} ({@code −(x / √2)²}), {@code GAUSSIAN}
 * ({@code e^−(x / √2)²}, which SameDiff's derivative of {@code erf} computes in the forward pass) and
 * {@code OUTPUT}. The arithmetic is {@link UnaryKernel}'s and {@link BinaryKernel}'s operation for
 * operation, written out in one loop because a vector may not cross a method boundary (see
 * {@link UnaryKernel}); the erf is {@link Erf}'s.
 */
final class ExactGeluKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final int COST = 16;

    private final FloatRegion x;
    private final float half;
    private final float scale;
    private final boolean divideByScale;
    private final float one;
    private final FloatRegion halfOut;
    private final FloatRegion scaledOut;
    private final FloatRegion erfOut;
    private final FloatRegion onePlusErfOut;
    private final FloatRegion squaredOut;
    private final FloatRegion negatedOut;
    private final FloatRegion gaussianOut;
    private final FloatRegion output;

    /**
     * @param scalars the recorded scalars: {@code half} (0.5), {@code scale} (√2, or 1/√2 when it multiplies), {@code one} (1)
     * @param parts the parts to write, by role
     */
    ExactGeluKernel(FloatRegion x, ExactGelu.Scalars scalars, Map<ExactGelu.Part, FloatRegion> parts) {
        for (Map.Entry<ExactGelu.Part, FloatRegion> part : parts.entrySet()) {
            if (part.getValue().length() != x.length()) {
                throw new IllegalArgumentException("exact GELU: input of " + x.length() + " elements, " + part.getKey() + " of " + part.getValue().length());
            }
        }
        this.x = x;
        this.half = scalars.half();
        this.scale = scalars.scale();
        this.divideByScale = scalars.divideByScale();
        this.one = scalars.one();
        this.halfOut = parts.get(ExactGelu.Part.HALF);
        this.scaledOut = parts.get(ExactGelu.Part.SCALED);
        this.erfOut = parts.get(ExactGelu.Part.ERF);
        this.onePlusErfOut = parts.get(ExactGelu.Part.ONE_PLUS_ERF);
        this.squaredOut = parts.get(ExactGelu.Part.SQUARED);
        this.negatedOut = parts.get(ExactGelu.Part.NEGATED);
        this.gaussianOut = parts.get(ExactGelu.Part.GAUSSIAN);
        this.output = parts.get(ExactGelu.Part.OUTPUT);
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(x.length(), LANES, (long) x.length() * COST, this::run);
    }

    private void run(int from, int to) {
        // vectorised from the length UnaryKernel's erf is, so that the bits match the op-by-op ops'
        int bound = x.length() < UnaryKernel.Function.ERF.vectorFrom ? from : from + SPECIES.loopBound(to - from);
        FloatVector unit = FloatVector.broadcast(SPECIES, 1f);
        for (int i = from; i < bound; i += LANES) {
            FloatVector v = FloatVector.fromByteBuffer(SPECIES, x.bytes(), x.at(i), FloatRegion.ORDER);
            FloatVector halved = v.mul(half);
            FloatVector scaled = divideByScale ? v.div(scale) : v.mul(scale);
            FloatVector magnitude = scaled.abs();
            FloatVector squared = scaled.mul(scaled);
            FloatVector series = FloatVector.broadcast(SPECIES, Erf.SERIES[Erf.SERIES.length - 1]);
            for (int n = Erf.SERIES.length - 2; n >= 0; n--) {
                series = series.mul(squared).add(Erf.SERIES[n]);
            }
            FloatVector t = unit.div(magnitude.mul(Erf.P).add(1f));
            FloatVector polynomial = t.mul(Erf.A5).add(Erf.A4).mul(t).add(Erf.A3).mul(t).add(Erf.A2).mul(t).add(Erf.A1).mul(t);
            FloatVector negated = squared.neg();
            // erf's e^-a² is the Gaussian part SameDiff's derivative asks for: one exponential for both
            FloatVector gaussian = negated.lanewise(VectorOperators.EXP);
            FloatVector far = unit.sub(polynomial.mul(gaussian));
            far = far.blend(far.neg(), scaled.compare(VectorOperators.LT, 0f));
            FloatVector erf = far.blend(series.mul(scaled), magnitude.compare(VectorOperators.LT, Erf.SERIES_LIMIT));
            FloatVector onePlusErf = erf.add(one);
            if (halfOut != null) {
                halved.intoByteBuffer(halfOut.bytes(), halfOut.at(i), FloatRegion.ORDER);
            }
            if (scaledOut != null) {
                scaled.intoByteBuffer(scaledOut.bytes(), scaledOut.at(i), FloatRegion.ORDER);
            }
            if (erfOut != null) {
                erf.intoByteBuffer(erfOut.bytes(), erfOut.at(i), FloatRegion.ORDER);
            }
            if (onePlusErfOut != null) {
                onePlusErf.intoByteBuffer(onePlusErfOut.bytes(), onePlusErfOut.at(i), FloatRegion.ORDER);
            }
            if (squaredOut != null) {
                squared.intoByteBuffer(squaredOut.bytes(), squaredOut.at(i), FloatRegion.ORDER);
            }
            if (negatedOut != null) {
                negated.intoByteBuffer(negatedOut.bytes(), negatedOut.at(i), FloatRegion.ORDER);
            }
            if (gaussianOut != null) {
                gaussian.intoByteBuffer(gaussianOut.bytes(), gaussianOut.at(i), FloatRegion.ORDER);
            }
            if (output != null) {
                halved.mul(onePlusErf).intoByteBuffer(output.bytes(), output.at(i), FloatRegion.ORDER);
            }
        }
        for (int i = bound; i < to; i++) {
            float v = x.get(i);
            float halved = v * half;
            float scaled = divideByScale ? v / scale : v * scale;
            float squared = scaled * scaled;
            float erf = Erf.of(scaled);
            float onePlusErf = erf + one;
            put(halfOut, i, halved);
            put(scaledOut, i, scaled);
            put(erfOut, i, erf);
            put(onePlusErfOut, i, onePlusErf);
            put(squaredOut, i, squared);
            put(negatedOut, i, -squared);
            put(gaussianOut, i, (float) Math.exp(-squared));
            put(output, i, halved * onePlusErf);
        }
    }

    private static void put(FloatRegion region, int index, float value) {
        if (region != null) {
            region.put(index, value);
        }
    }
}
