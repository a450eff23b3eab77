package io.peft4j.runtime.internal.vector;

import java.nio.FloatBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * Scaled dot-product attention in one pass, {@code output = softmax(Q · Kᵀ ∘ scale + mask) · V},
 * computing what the five op calls it replaces compute, bit for bit: the products as
 * {@link BatchedProductKernel}, the scaling and the mask as one IEEE operation each, the softmax as
 * {@link SoftmaxKernel}.
 *
 * <p>Shapes: {@code query} {@code batch × [m, d]}, {@code keys} {@code batch × [d, T]} (the keys
 * transposed, a view), {@code values} {@code batch × [T, e]}, {@code mask} (optional)
 * {@code batch × [m, T]}, usually a broadcast view of {@code [batch, 1, 1, T]}; the output is
 * {@code [batch, m, e]} and each written intermediate {@code [batch, m, T]}, contiguous.
 *
 * <p>Why: op by op, each of the scores, the scaled scores, the masked scores and the probabilities is
 * a pass over {@code [batch, heads, T, T]} in memory (12.6 MB per MiniLM layer at batch 16), written
 * and read again. Here a task takes 64 rows of one head: their scores, their softmax and their share
 * of {@code P · V} are computed while the rows are in cache, and only the intermediates that later ops
 * read (a training step's gradient reads the probabilities) are written out.
 */
final class AttentionKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = BlockProduct.SPECIES;
    private static final int LANES = BlockProduct.LANES;
    private static final int ROW_BLOCK = BlockProduct.ROW_BLOCK;
    /** The relative cost per score of the scaling, mask and softmax, as {@link SoftmaxKernel} counts it. */
    private static final int SOFTMAX_COST = 12;
    private static final int QUERY = 0;
    private static final int KEYS = 1;
    private static final int VALUES = 2;
    private static final int COLUMN = 3;
    private static final int SCORES = 4;
    private static final int OUTPUT = 5;
    private static final int MASK = 6;
    private static final ThreadLocal<BlockProduct.Packing> PACKING = ThreadLocal.withInitial(() -> new BlockProduct.Packing(7));

    /** How the scores are scaled before the mask: not at all, or divided or multiplied by a constant. */
    enum Scaling { NONE, DIVIDE, MULTIPLY }

    /** Where the kernel writes: the output, and the intermediates later ops read ({@code null} when none does). */
    record Targets(FloatRegion scores, FloatRegion scaled, FloatRegion masked, FloatRegion probabilities, FloatRegion output) {
    }

    private final BatchedMatrix query;
    private final BatchedMatrix keys;
    private final BatchedMatrix values;
    private final BatchedMatrix mask;
    private final Scaling scaling;
    private final float scale;
    private final int m;
    private final int d;
    private final int positions;
    private final int e;
    private final int paddedPositions;
    private final int paddedValues;
    private final int rowBlocks;
    private final int queryRowStep;
    private final int queryColumnStep;
    private final FloatBuffer queryFloats;
    private final FloatBuffer keyFloats;
    private final FloatBuffer valueFloats;
    private final FloatBuffer maskFloats;
    private final FloatBuffer[] written;
    private final int[] writtenStart;
    private final FloatBuffer outputFloats;
    private final int outputStart;

    AttentionKernel(BatchedMatrix query, BatchedMatrix keys, BatchedMatrix values, BatchedMatrix mask, Scaling scaling, float scale,
                    Targets targets) {
        this.m = query.rows();
        this.d = query.columns();
        this.positions = keys.columns();
        this.e = values.columns();
        int batch = query.batch();
        long scores = (long) batch * m * positions;
        if (keys.rows() != d || values.rows() != positions || keys.batch() != batch || values.batch() != batch
                || (mask != null && (mask.batch() != batch || mask.rows() != m || mask.columns() != positions))
                || (long) batch * m * e != targets.output().length()) {
            throw new IllegalArgumentException("attention: queries " + batch + " × [" + m + ", " + d + "], keys " + keys.batch() + " × ["
                    + keys.rows() + ", " + positions + "], values " + values.batch() + " × [" + values.rows() + ", " + e + "], output of "
                    + targets.output().length() + " elements");
        }
        FloatRegion[] intermediates = {targets.scores(), targets.scaled(), targets.masked(), targets.probabilities()};
        this.written = new FloatBuffer[intermediates.length];
        this.writtenStart = new int[intermediates.length];
        for (int i = 0; i < intermediates.length; i++) {
            if (intermediates[i] != null) {
                if (intermediates[i].length() != scores) {
                    throw new IllegalArgumentException("attention: an intermediate of " + intermediates[i].length() + " elements, scores have "
                            + scores);
                }
                written[i] = intermediates[i].floats();
                writtenStart[i] = intermediates[i].start() / Float.BYTES;
            }
        }
        this.query = query;
        this.keys = keys;
        this.values = values;
        this.mask = mask;
        this.scaling = scaling;
        this.scale = scale;
        this.paddedPositions = BlockProduct.paddedColumns(positions);
        this.paddedValues = BlockProduct.paddedColumns(e);
        this.rowBlocks = (m + ROW_BLOCK - 1) / ROW_BLOCK;
        boolean columnMajor = BlockProduct.columnMajor(query);
        this.queryRowStep = columnMajor ? 1 : d;
        this.queryColumnStep = columnMajor ? ROW_BLOCK : 1;
        this.queryFloats = query.floats();
        this.keyFloats = keys.floats();
        this.valueFloats = values.floats();
        this.maskFloats = mask == null ? null : mask.floats();
        this.outputFloats = targets.output().floats();
        this.outputStart = targets.output().start() / Float.BYTES;
    }

    @Override
    public void run() {
        long scores = (long) query.batch() * m * positions;
        long work = scores * (d + e) / BatchedProductKernel.MULTIPLY_ADDS_PER_WORK_UNIT + scores * SOFTMAX_COST;
        KernelThreads.shared().forRange(query.batch() * rowBlocks, 1, work, this::tasks);
    }

    /** Tasks {@code [from, to)}: task {@code t} is rows block {@code t % rowBlocks} of head {@code t / rowBlocks}. */
    private void tasks(int from, int to) {
        BlockProduct.Packing packing = PACKING.get();
        float[] a = packing.get(QUERY, ROW_BLOCK * d);
        float[] k = packing.get(KEYS, d * paddedPositions);
        float[] v = packing.get(VALUES, positions * paddedValues);
        float[] column = packing.get(COLUMN, Math.max(d, positions));
        float[] s = packing.get(SCORES, ROW_BLOCK * paddedPositions);
        float[] o = packing.get(OUTPUT, ROW_BLOCK * paddedValues);
        float[] maskRow = packing.get(MASK, paddedPositions);
        int packedItem = -1;
        for (int task = from; task < to; task++) {
            int item = task / rowBlocks;
            int firstRow = task % rowBlocks * ROW_BLOCK;
            int rows = Math.min(ROW_BLOCK, m - firstRow);
            if (item != packedItem) {
                BlockProduct.packRight(keys, keyFloats, item, k, column);
                BlockProduct.packRight(values, valueFloats, item, v, column);
                packedItem = item;
            }
            BlockProduct.packLeft(query, queryFloats, item, firstRow, rows, a);
            BlockProduct.multiply(a, queryRowStep, queryColumnStep, rows, d, k, paddedPositions, s);
            for (int r = 0; r < rows; r++) {
                probabilities(s, r * paddedPositions, item, firstRow + r, maskRow);
            }
            BlockProduct.multiply(s, paddedPositions, 1, rows, positions, v, paddedValues, o);
            int out = outputStart + (item * m + firstRow) * e;
            for (int r = 0; r < rows; r++) {
                outputFloats.put(out + r * e, o, r * paddedValues, e);
            }
        }
    }

    /** Turns one row of scores, at {@code s[at ..]}, into probabilities, writing the intermediates asked for on the way. */
    private void probabilities(float[] s, int at, int item, int row, float[] maskRow) {
        int scoreIndex = (item * m + row) * positions;
        write(0, s, at, scoreIndex);
        if (scaling != Scaling.NONE) {
            for (int i = 0; i < paddedPositions; i += LANES) {
                FloatVector x = FloatVector.fromArray(SPECIES, s, at + i);
                (scaling == Scaling.DIVIDE ? x.div(scale) : x.mul(scale)).intoArray(s, at + i);
            }
            write(1, s, at, scoreIndex);
        }
        if (mask != null) {
            if (mask.columnStride() == 1) {
                maskFloats.get(mask.index(item, row, 0), maskRow, 0, positions);
            } else {
                for (int i = 0; i < positions; i++) {
                    maskRow[i] = maskFloats.get(mask.index(item, row, i));
                }
            }
            // whole vectors: what lands past column T is never read (softmax masks its tail, P · V stops at T)
            for (int i = 0; i < paddedPositions; i += LANES) {
                FloatVector.fromArray(SPECIES, s, at + i).add(FloatVector.fromArray(SPECIES, maskRow, i)).intoArray(s, at + i);
            }
            write(2, s, at, scoreIndex);
        }
        SoftmaxKernel.inPlace(s, at, positions);
        write(3, s, at, scoreIndex);
    }

    private void write(int intermediate, float[] s, int at, int index) {
        if (written[intermediate] != null) {
            written[intermediate].put(writtenStart[intermediate] + index, s, at, positions);
        }
    }
}
