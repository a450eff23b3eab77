package io.peft4j.runtime.internal.vector;

import java.nio.FloatBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * Softmax along the last axis of a contiguous fp32 array: {@code y = e^(x − max) / Σ e^(x − max)}
 * per row, as libnd4j's {@code softmax} computes it.
 *
 * <p>Shapes: {@code x} and {@code y} {@code [.., d]}, viewed as {@code rows × d}; {@code y} may be
 * {@code x}. Each row is copied to the heap and computed there by {@link #inPlace} while it is in
 * cache.
 */
final class SoftmaxKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int COST = 12;
    private static final ThreadLocal<BlockProduct.Packing> ROW = ThreadLocal.withInitial(() -> new BlockProduct.Packing(1));

    private final FloatRegion x;
    private final FloatRegion y;
    private final int width;

    SoftmaxKernel(FloatRegion x, FloatRegion y, int width) {
        if (x.length() != y.length() || width < 1 || x.length() % width != 0) {
            throw new IllegalArgumentException("softmax: input of " + x.length() + " elements, output of " + y.length()
                    + ", rows of " + width);
        }
        this.x = x;
        this.y = y;
        this.width = width;
    }

    @Override
    public void run() {
        KernelThreads.shared().forRange(x.length() / width, 1, (long) x.length() * COST, this::rows);
    }

    private void rows(int fromRow, int toRow) {
        float[] row = ROW.get().get(0, width);
        FloatBuffer in = x.floats();
        FloatBuffer out = y.floats();
        for (int r = fromRow; r < toRow; r++) {
            in.get(x.start() / Float.BYTES + r * width, row, 0, width);
            inPlace(row, 0, width);
            out.put(y.start() / Float.BYTES + r * width, row, 0, width);
        }
    }

    /**
     * The softmax of {@code row[at, at + width)} in place: the maximum, the shifted values, their
     * exponentials ({@link Exp}), their sum (whole vectors in lanes, the lanes added, then the tail
     * one by one) and the quotients. {@link AttentionKernel} calls this too, so both give the same bits.
     */
    static void inPlace(float[] row, int at, int width) {
        int bound = SPECIES.loopBound(width);
        FloatVector maxima = FloatVector.broadcast(SPECIES, Float.NEGATIVE_INFINITY);
        int i = 0;
        for (; i < bound; i += SPECIES.length()) {
            maxima = maxima.max(FloatVector.fromArray(SPECIES, row, at + i));
        }
        float max = maxima.reduceLanes(VectorOperators.MAX);
        for (int j = i; j < width; j++) {
            max = Math.max(max, row[at + j]);
        }
        for (i = 0; i < bound; i += SPECIES.length()) {
            FloatVector.fromArray(SPECIES, row, at + i).sub(max).intoArray(row, at + i);
        }
        for (int j = i; j < width; j++) {
            row[at + j] -= max;
        }
        Exp.inPlace(row, at, at + width);
        FloatVector sums = FloatVector.zero(SPECIES);
        for (i = 0; i < bound; i += SPECIES.length()) {
            sums = sums.add(FloatVector.fromArray(SPECIES, row, at + i));
        }
        float sum = sums.reduceLanes(VectorOperators.ADD);
        for (int j = i; j < width; j++) {
            sum += row[at + j];
        }
        for (i = 0; i < bound; i += SPECIES.length()) {
            FloatVector.fromArray(SPECIES, row, at + i).div(sum).intoArray(row, at + i);
        }
        for (int j = i; j < width; j++) {
            row[at + j] /= sum;
        }
    }
}
