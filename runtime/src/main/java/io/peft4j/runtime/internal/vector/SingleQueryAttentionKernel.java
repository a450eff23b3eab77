package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.ReplayKernels;
import java.nio.ByteBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * ND4J's {@code dot_product_attention} of one query per batch entry, without a mask, in fp32: per
 * entry {@code b}, {@code w = softmax(keys[b]ᵀ · q[b] / √k)} over the positions and
 * {@code out[b] = values[b] · w} (the scaling only when {@code scaled}) — one cached decoding step's
 * attention, heads as the batch.
 *
 * <p>Shapes: {@code queries [batch, k, 1]} and {@code output [batch, v, 1]} contiguous;
 * {@code keys [batch, k, positions]} and {@code values [batch, v, positions]} with any strides whose
 * feature axis (1) is contiguous, such as a cache of rows {@code [positions, batch · k]} permuted.
 * Sums run in another order than libnd4j's, so results differ from its in the last bits.
 *
 * <p>As a {@link ReplayKernels.CacheKernel} it attends over the first positions given at each call
 * (a cache filled up to there), bound once to the whole cache.
 */
final class SingleQueryAttentionKernel implements Runnable, ReplayKernels.CacheKernel {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();

    private final FloatRegion queries;
    private final StridedRegion keys;
    private final StridedRegion values;
    private final FloatRegion output;
    private final boolean scaled;
    private final int batch;
    private final int keySize;
    private final int valueSize;
    private final int capacity;
    private final float[] weights;

    SingleQueryAttentionKernel(FloatRegion queries, StridedRegion keys, StridedRegion values, FloatRegion output, boolean scaled) {
        this.batch = keys.shape()[0];
        this.keySize = keys.shape()[1];
        this.valueSize = values.shape()[1];
        this.capacity = keys.shape()[2];
        if (values.shape()[0] != batch || values.shape()[2] != capacity || queries.length() != batch * keySize
                || output.length() != batch * valueSize || keys.strides()[1] != 1 || values.strides()[1] != 1) {
            throw new IllegalArgumentException("dot_product_attention of one query: queries of " + queries.length() + " elements, keys "
                    + java.util.Arrays.toString(keys.shape()) + ", values " + java.util.Arrays.toString(values.shape()) + ", output of "
                    + output.length() + " (feature axes must be contiguous)");
        }
        this.queries = queries;
        this.keys = keys;
        this.values = values;
        this.output = output;
        this.scaled = scaled;
        this.weights = new float[capacity];
    }

    @Override
    public void run() {
        run(capacity);
    }

    @Override
    public void run(int filled) {
        if (filled < 1 || filled > capacity) {
            throw new IllegalArgumentException("attention over " + filled + " positions of a cache of " + capacity);
        }
        for (int b = 0; b < batch; b++) {
            scores(b, filled);
            softmax(filled);
            weightedValues(b, filled);
        }
    }

    // The buffers, offsets and strides are locals in these loops: read through the regions at each
    // load, the same loops took about 1.5 times as long (BENCHMARKS.md, change 32).
    private void scores(int b, int positions) {
        float scale = scaled ? (float) Math.sqrt(keySize) : 1f;
        ByteBuffer queryBytes = queries.bytes();
        ByteBuffer keyBytes = keys.bytes();
        int query = queries.at(b * keySize);
        int positionBytes = keys.strides()[2] * Float.BYTES;
        int key = keys.at(b, 0, 0);
        for (int p = 0; p < positions; p++, key += positionBytes) {
            FloatVector sums = FloatVector.zero(SPECIES);
            int i = 0;
            for (; i + LANES <= keySize; i += LANES) {
                FloatVector q = FloatVector.fromByteBuffer(SPECIES, queryBytes, query + i * Float.BYTES, FloatRegion.ORDER);
                sums = FloatVector.fromByteBuffer(SPECIES, keyBytes, key + i * Float.BYTES, FloatRegion.ORDER).fma(q, sums);
            }
            float sum = sums.reduceLanes(VectorOperators.ADD);
            for (; i < keySize; i++) {
                sum = Math.fma(queryBytes.getFloat(query + i * Float.BYTES), keyBytes.getFloat(key + i * Float.BYTES), sum);
            }
            weights[p] = scaled ? sum / scale : sum;
        }
    }

    private void softmax(int positions) {
        float max = Float.NEGATIVE_INFINITY;
        for (int p = 0; p < positions; p++) {
            max = Math.max(max, weights[p]);
        }
        float total = 0f;
        for (int p = 0; p < positions; p++) {
            weights[p] = Exp.of(weights[p] - max);
            total += weights[p];
        }
        for (int p = 0; p < positions; p++) {
            weights[p] /= total;
        }
    }

    private void weightedValues(int b, int positions) {
        ByteBuffer valueBytes = values.bytes();
        int positionBytes = values.strides()[2] * Float.BYTES;
        int first = values.at(b, 0, 0);
        int out = output.at(b * valueSize);
        float[] w = weights;
        int i = 0;
        for (; i + LANES <= valueSize; i += LANES) {
            FloatVector sums = FloatVector.zero(SPECIES);
            int value = first + i * Float.BYTES;
            for (int p = 0; p < positions; p++, value += positionBytes) {
                sums = FloatVector.fromByteBuffer(SPECIES, valueBytes, value, FloatRegion.ORDER).fma(FloatVector.broadcast(SPECIES, w[p]), sums);
            }
            sums.intoByteBuffer(output.bytes(), out + i * Float.BYTES, FloatRegion.ORDER);
        }
        for (; i < valueSize; i++) {
            float sum = 0f;
            int value = first + i * Float.BYTES;
            for (int p = 0; p < positions; p++, value += positionBytes) {
                sum = Math.fma(w[p], valueBytes.getFloat(value), sum);
            }
            output.put(b * valueSize + i, sum);
        }
    }
}
