package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.WrittenOutLayerNorm.Part;
import io.peft4j.runtime.internal.WrittenOutLayerNorm.Stage;
import java.util.Map;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A LayerNorm written out op by op, in one pass over each row of a contiguous fp32 array:
 * {@code mean}, {@code centred = x − mean}, {@code squared = centred²}, {@code variance = mean(squared)},
 * {@code shifted = variance + ε}, {@code deviation = √shifted}, {@code normalised = centred / deviation},
 * {@code scaled = normalised · gain}, {@code output = scaled + bias} — each value as the op-by-op replay
 * computes it (the means summed as {@link RowReductionKernel} sums, every other step one IEEE operation),
 * so the result is the op-by-op result bit for bit. Only the parts given are written.
 * {@link Stage#STATISTICS} stops at the shifted variance; {@link Stage#NORMALISATION} starts from the
 * centred values (as {@code x}) and the shifted variance.
 *
 * <p>Shapes: {@code x [.., d]} viewed as {@code rows × d}; {@code gain} and {@code bias} {@code [d]}
 * (none for {@link Stage#STATISTICS}); {@code shiftedInput} one element per row;
 * per-element parts {@code x}'s length, per-row parts ({@code MEAN}, {@code VARIANCE}, {@code SHIFTED},
 * {@code DEVIATION}) one element per row.
 */
final class WrittenOutLayerNormKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final int COST = 8;

    private final Stage stage;
    private final FloatRegion x;
    private final FloatRegion shiftedInput;
    private final FloatRegion gain;
    private final FloatRegion bias;
    private final float epsilon;
    private final int width;
    private final FloatRegion mean;
    private final FloatRegion centred;
    private final FloatRegion squared;
    private final FloatRegion variance;
    private final FloatRegion shifted;
    private final FloatRegion deviation;
    private final FloatRegion normalised;
    private final FloatRegion scaled;
    private final FloatRegion output;

    WrittenOutLayerNormKernel(Stage stage, FloatRegion x, FloatRegion shiftedInput, FloatRegion gain, FloatRegion bias, int width,
                              float epsilon, Map<Part, FloatRegion> parts) {
        this.width = width;
        boolean scales = stage != Stage.STATISTICS;
        if (width < 1 || x.length() % width != 0 || (scales && (gain == null || bias == null || gain.length() != width || bias.length() != width))
                || (stage == Stage.NORMALISATION) != (shiftedInput != null)
                || (shiftedInput != null && shiftedInput.length() != x.length() / width)) {
            throw new IllegalArgumentException("LayerNorm (" + stage + "): input of " + x.length() + " elements in rows of " + width
                    + ", gain " + (gain == null ? "none" : gain.length()) + ", bias " + (bias == null ? "none" : bias.length()) + ", shifted variance "
                    + (shiftedInput == null ? "none" : shiftedInput.length()));
        }
        int rows = x.length() / width;
        for (Map.Entry<Part, FloatRegion> part : parts.entrySet()) {
            int expected = perRow(part.getKey()) ? rows : x.length();
            if (part.getValue().length() != expected) {
                throw new IllegalArgumentException("LayerNorm part " + part.getKey() + ": " + part.getValue().length() + " elements, not " + expected);
            }
        }
        this.stage = stage;
        this.shiftedInput = shiftedInput;
        this.x = x;
        this.gain = gain;
        this.bias = bias;
        this.epsilon = epsilon;
        this.mean = parts.get(Part.MEAN);
        this.centred = parts.get(Part.CENTRED);
        this.squared = parts.get(Part.SQUARED);
        this.variance = parts.get(Part.VARIANCE);
        this.shifted = parts.get(Part.SHIFTED);
        this.deviation = parts.get(Part.DEVIATION);
        this.normalised = parts.get(Part.NORMALISED);
        this.scaled = parts.get(Part.SCALED);
        this.output = parts.get(Part.OUTPUT);
    }

    static boolean perRow(Part part) {
        return part == Part.MEAN || part == Part.VARIANCE || part == Part.SHIFTED || part == Part.DEVIATION;
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(x.length() / width, 1, (long) x.length() * COST, this::rows);
    }

    private void rows(int fromRow, int toRow) {
        for (int row = fromRow; row < toRow; row++) {
            if (stage == Stage.NORMALISATION) {
                float root = (float) Math.sqrt(shiftedInput.get(row));
                put(deviation, row, root);
                normalisation(row, 0f, root);
                continue;
            }
            float average = rowMean(row);
            float root = (float) Math.sqrt(shiftedVariance(row, average));
            if (stage == Stage.ALL) {
                put(deviation, row, root);
                normalisation(row, average, root);
            }
        }
    }

    /** Pass one over a row: its mean, summed as {@link RowReductionKernel} sums. */
    private float rowMean(int row) {
        int bound = SPECIES.loopBound(width);
        int first = row * width;
        FloatVector lanes = FloatVector.zero(SPECIES);
        int i = 0;
        for (; i < bound; i += LANES) {
            lanes = lanes.add(load(x, first + i));
        }
        float sum = lanes.reduceLanes(VectorOperators.ADD);
        for (; i < width; i++) {
            sum += x.get(first + i);
        }
        float average = sum / width;
        put(mean, row, average);
        return average;
    }

    /** Pass two over a row: the centred values, their squares, the variance; returns the variance plus ε. */
    private float shiftedVariance(int row, float average) {
        int bound = SPECIES.loopBound(width);
        int first = row * width;
        FloatVector squares = FloatVector.zero(SPECIES);
        int i = 0;
        for (; i < bound; i += LANES) {
            FloatVector c = load(x, first + i).sub(average);
            FloatVector s = c.mul(c);
            squares = squares.add(s);
            store(centred, first + i, c);
            store(squared, first + i, s);
        }
        float squareSum = squares.reduceLanes(VectorOperators.ADD);
        for (; i < width; i++) {
            float c = x.get(first + i) - average;
            float s = c * c;
            squareSum += s;
            put(centred, first + i, c);
            put(squared, first + i, s);
        }
        float spread = squareSum / width;
        float shift = spread + epsilon;
        put(variance, row, spread);
        put(shifted, row, shift);
        return shift;
    }

    /** The last pass over a row: the centred values (from {@code x}, or {@code x} itself when normalising only) divided, scaled, shifted. */
    private void normalisation(int row, float average, float root) {
        int bound = SPECIES.loopBound(width);
        int first = row * width;
        boolean fromCentred = stage == Stage.NORMALISATION;
        int i = 0;
        for (; i < bound; i += LANES) {
            FloatVector c = fromCentred ? load(x, first + i) : load(x, first + i).sub(average);
            FloatVector n = c.div(root);
            FloatVector g = n.mul(load(gain, i));
            store(normalised, first + i, n);
            store(scaled, first + i, g);
            store(output, first + i, g.add(load(bias, i)));
        }
        for (; i < width; i++) {
            float c = fromCentred ? x.get(first + i) : x.get(first + i) - average;
            float n = c / root;
            float g = n * gain.get(i);
            put(normalised, first + i, n);
            put(scaled, first + i, g);
            put(output, first + i, g + bias.get(i));
        }
    }

    private static FloatVector load(FloatRegion region, int index) {
        return FloatVector.fromByteBuffer(SPECIES, region.bytes(), region.at(index), FloatRegion.ORDER);
    }

    private static void store(FloatRegion region, int index, FloatVector value) {
        if (region != null) {
            value.intoByteBuffer(region.bytes(), region.at(index), FloatRegion.ORDER);
        }
    }

    private static void put(FloatRegion region, int index, float value) {
        if (region != null) {
            region.put(index, value);
        }
    }
}
