package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * ND4J's {@code layer_norm} over the last axis of a contiguous fp32 array, as libnd4j defines it:
 * {@code y = (x − mean) / σ · gain + bias} per row, with the population standard deviation and no
 * epsilon, and a row whose σ is 0 standardised to 0 (libnd4j replaces the NaNs of 0 / 0).
 *
 * <p>Shapes: {@code x} and {@code y} {@code [.., d]}, viewed as {@code rows × d}; {@code gain} and
 * {@code bias} {@code [d]}. Two passes over each row for the statistics, one for the result, while
 * the row is in cache. Sums run in another order than libnd4j's, so results differ from its in the
 * last bits.
 */
final class LayerNormKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final int COST = 6;

    private final FloatRegion x;
    private final FloatRegion gain;
    private final FloatRegion bias;
    private final FloatRegion y;
    private final int width;

    LayerNormKernel(FloatRegion x, FloatRegion gain, FloatRegion bias, FloatRegion y) {
        int width = gain.length();
        if (x.length() != y.length() || bias.length() != width || width < 1 || x.length() % width != 0) {
            throw new IllegalArgumentException("layer_norm: input of " + x.length() + " elements, output of " + y.length() + ", gain of "
                    + gain.length() + ", bias of " + bias.length());
        }
        this.x = x;
        this.gain = gain;
        this.bias = bias;
        this.y = y;
        this.width = width;
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(x.length() / width, 1, (long) x.length() * COST, this::rows);
    }

    private void rows(int fromRow, int toRow) {
        int bound = SPECIES.loopBound(width);
        for (int row = fromRow; row < toRow; row++) {
            int first = row * width;
            FloatVector sums = FloatVector.zero(SPECIES);
            int i = 0;
            for (; i < bound; i += LANES) {
                sums = sums.add(load(x, first + i));
            }
            float sum = sums.reduceLanes(VectorOperators.ADD);
            for (; i < width; i++) {
                sum += x.get(first + i);
            }
            float mean = sum / width;
            FloatVector squares = FloatVector.zero(SPECIES);
            for (i = 0; i < bound; i += LANES) {
                FloatVector centred = load(x, first + i).sub(mean);
                squares = centred.fma(centred, squares);
            }
            float squared = squares.reduceLanes(VectorOperators.ADD);
            for (; i < width; i++) {
                float centred = x.get(first + i) - mean;
                squared += centred * centred;
            }
            float deviation = (float) Math.sqrt(squared / width);
            if (deviation == 0f) {
                // (x − mean) / 0 is 0 / 0 here, which libnd4j turns into 0: the row is its bias.
                for (i = 0; i < width; i++) {
                    y.put(first + i, bias.get(i));
                }
                continue;
            }
            for (i = 0; i < bound; i += LANES) {
                load(x, first + i).sub(mean).div(deviation).fma(load(gain, i), load(bias, i))
                        .intoByteBuffer(y.bytes(), y.at(first + i), FloatRegion.ORDER);
            }
            for (; i < width; i++) {
                y.put(first + i, Math.fma((x.get(first + i) - mean) / deviation, gain.get(i), bias.get(i)));
            }
        }
    }

    private static FloatVector load(FloatRegion region, int index) {
        return FloatVector.fromByteBuffer(SPECIES, region.bytes(), region.at(index), FloatRegion.ORDER);
    }
}
