package io.peft4j.runtime.internal.vector;

import java.nio.FloatBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * The gradient of attention, {@code O = softmax(S) · V} with {@code S = Q · Kᵀ ∘ scale + mask}, in one
 * pass per head, computing what the op calls it replaces compute, bit for bit: {@code dP = dO · Vᵀ}
 * and {@code dV = Pᵀ · dO} (the second product's {@code matmul_bp}), the softmax's gradient from its
 * output {@code dS = P ⊙ (dP − Σ dP ⊙ P)} as the product, row sum ({@link RowReductionKernel}'s order),
 * difference and product, its scaling, then {@code dQ = dS · K} and {@code dK = dSᵀ · Q} (the first
 * product's {@code matmul_bp}); the products as {@link BatchedProductKernel} computes them.
 *
 * <p>Shapes: {@code query} {@code batch × [m, d]}, {@code keys} {@code batch × [T, d]},
 * {@code values} {@code batch × [T, e]}, {@code probabilities} {@code batch × [m, T]} and
 * {@code outputGradient} {@code batch × [m, e]}, any strides; the gradients {@code dQ [batch, m, d]},
 * {@code dK [batch, T, d]} and {@code dV [batch, T, e]} contiguous. Where nothing needs {@code dK}
 * (SameDiff prunes it when the keys' projection has nothing to train), {@code query} and {@code dK}
 * are {@code null}.
 *
 * <p>Why: op by op, {@code dP}, its product with {@code P}, the difference, the next product, the
 * scaled gradient are each a pass over {@code [batch, heads, m, T]} in memory, written and read
 * again. Here one task takes one head: {@code dP} and {@code dS} stay on the heap, in cache, and only
 * the three gradients are written.
 */
final class AttentionGradientKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = BlockProduct.SPECIES;
    private static final int LANES = BlockProduct.LANES;
    private static final int ROW_BLOCK = BlockProduct.ROW_BLOCK;
    /** The relative cost per score of the softmax gradient's arithmetic, as {@link KernelThreads} counts work. */
    private static final int ELEMENTWISE_COST = 8;
    private static final int GRADIENT_ROWS = 0;
    private static final int TRANSPOSED_VALUES = 1;
    private static final int KEYS = 2;
    private static final int QUERY = 3;
    private static final int OUTPUT_GRADIENT = 4;
    private static final int COLUMN = 5;
    private static final int PROBABILITY_ROWS = 6;
    private static final int SCORE_GRADIENT = 7;
    private static final int BLOCK = 8;
    private static final int PRODUCT = 9;
    private static final ThreadLocal<BlockProduct.Packing> PACKING = ThreadLocal.withInitial(() -> new BlockProduct.Packing(10));

    /** Where the gradients go, each contiguous; {@code keys} {@code null} when not wanted. */
    record Gradients(FloatRegion query, FloatRegion keys, FloatRegion values) {
    }

    private final BatchedMatrix query;
    private final BatchedMatrix keys;
    private final BatchedMatrix values;
    private final BatchedMatrix probabilities;
    private final BatchedMatrix outputGradient;
    private final AttentionKernel.Scaling scaling;
    private final float scale;
    private final int m;
    private final int d;
    private final int positions;
    private final int e;
    private final int paddedPositions;
    private final int paddedKeys;
    private final int paddedValues;
    private final FloatBuffer queryFloats;
    private final FloatBuffer keyFloats;
    private final FloatBuffer valueFloats;
    private final FloatBuffer probabilityFloats;
    private final FloatBuffer outputGradientFloats;
    private final FloatBuffer[] gradientFloats;
    private final int[] gradientStart;

    AttentionGradientKernel(BatchedMatrix query, BatchedMatrix keys, BatchedMatrix values, BatchedMatrix probabilities,
                            BatchedMatrix outputGradient, AttentionKernel.Scaling scaling, float scale, Gradients gradients) {
        this.m = probabilities.rows();
        this.d = keys.columns();
        this.positions = keys.rows();
        this.e = values.columns();
        int batch = probabilities.batch();
        if ((query == null) != (gradients.keys() == null)) {
            throw new IllegalArgumentException("attention gradient: the keys' gradient needs the queries, and only it does");
        }
        boolean queriesFit = query == null || (query.rows() == m && query.columns() == d && query.batch() == batch);
        if (!queriesFit || values.rows() != positions || probabilities.columns() != positions || outputGradient.rows() != m
                || outputGradient.columns() != e || keys.batch() != batch || values.batch() != batch || outputGradient.batch() != batch || gradients.query().length() != (long) batch * m * d
                || (gradients.keys() != null && gradients.keys().length() != (long) batch * positions * d)
                || gradients.values().length() != (long) batch * positions * e) {
            throw new IllegalArgumentException("attention gradient: queries " + batch + " × [" + m + ", " + d + "], keys " + keys.batch()
                    + " × [" + keys.rows() + ", " + keys.columns() + "], values " + values.batch() + " × [" + values.rows() + ", " + e
                    + "], probabilities " + probabilities.batch() + " × [" + probabilities.rows() + ", " + probabilities.columns() + "]");
        }
        this.query = query;
        this.keys = keys;
        this.values = values;
        this.probabilities = probabilities;
        this.outputGradient = outputGradient;
        this.scaling = scaling;
        this.scale = scale;
        this.paddedPositions = BlockProduct.paddedColumns(positions);
        this.paddedKeys = BlockProduct.paddedColumns(d);
        this.paddedValues = BlockProduct.paddedColumns(e);
        this.queryFloats = query == null ? null : query.floats();
        this.keyFloats = keys.floats();
        this.valueFloats = values.floats();
        this.probabilityFloats = probabilities.floats();
        this.outputGradientFloats = outputGradient.floats();
        FloatRegion[] targets = {gradients.query(), gradients.keys(), gradients.values()};
        this.gradientFloats = new FloatBuffer[targets.length];
        this.gradientStart = new int[targets.length];
        for (int i = 0; i < targets.length; i++) {
            if (targets[i] != null) {
                gradientFloats[i] = targets[i].floats();
                gradientStart[i] = targets[i].start() / Float.BYTES;
            }
        }
    }

    @Override
    public void run() {
        long scores = (long) probabilities.batch() * m * positions;
        long work = scores * 2 * (d + e) / BatchedProductKernel.MULTIPLY_ADDS_PER_WORK_UNIT + scores * ELEMENTWISE_COST;
        KernelThreads.shared().forRange(probabilities.batch(), 1, work, this::heads);
    }

    private void heads(int from, int to) {
        BlockProduct.Packing packing = PACKING.get();
        float[] gradientRows = packing.get(GRADIENT_ROWS, ROW_BLOCK * e);
        float[] transposedValues = packing.get(TRANSPOSED_VALUES, e * paddedPositions);
        float[] packedKeys = packing.get(KEYS, positions * paddedKeys);
        float[] packedQuery = packing.get(QUERY, m * paddedKeys);
        float[] packedGradient = packing.get(OUTPUT_GRADIENT, m * paddedValues);
        float[] column = packing.get(COLUMN, Math.max(Math.max(m, positions), Math.max(d, e)));
        float[] p = packing.get(PROBABILITY_ROWS, m * paddedPositions);
        float[] scoreGradient = packing.get(SCORE_GRADIENT, m * paddedPositions);
        float[] block = packing.get(BLOCK, ROW_BLOCK * paddedPositions);
        float[] product = packing.get(PRODUCT, Math.max(m, positions) * Math.max(paddedKeys, paddedValues));
        BatchedMatrix transposed = values.transposed();
        BatchedMatrix keyRows = keys;
        for (int item = from; item < to; item++) {
            BlockProduct.packRight(transposed, valueFloats, item, transposedValues, column);
            BlockProduct.packRight(keyRows, keyFloats, item, packedKeys, column);
            if (query != null) {
                BlockProduct.packRight(query, queryFloats, item, packedQuery, column);
            }
            BlockProduct.packRight(outputGradient, outputGradientFloats, item, packedGradient, column);
            for (int firstRow = 0; firstRow < m; firstRow += ROW_BLOCK) {
                int rows = Math.min(ROW_BLOCK, m - firstRow);
                BlockProduct.packLeft(outputGradient, outputGradientFloats, item, firstRow, rows, gradientRows);
                boolean columnMajor = BlockProduct.columnMajor(outputGradient);
                BlockProduct.multiply(gradientRows, columnMajor ? 1 : e, columnMajor ? ROW_BLOCK : 1, rows, e, transposedValues,
                        paddedPositions, block);
                for (int r = 0; r < rows; r++) {
                    int row = firstRow + r;
                    readRow(probabilities, probabilityFloats, item, row, p, row * paddedPositions, column);
                    softmaxGradient(block, r * paddedPositions, p, row * paddedPositions, scoreGradient);
                }
            }
            // dQ = dS · K, dK = dSᵀ · Q, dV = Pᵀ · dO: the left operands read in place on the heap
            BlockProduct.multiply(scoreGradient, paddedPositions, 1, m, positions, packedKeys, paddedKeys, product);
            write(0, item, m, d, paddedKeys, product);
            if (query != null) {
                BlockProduct.multiply(scoreGradient, 1, paddedPositions, positions, m, packedQuery, paddedKeys, product);
                write(1, item, positions, d, paddedKeys, product);
            }
            BlockProduct.multiply(p, 1, paddedPositions, positions, m, packedGradient, paddedValues, product);
            write(2, item, positions, e, paddedValues, product);
        }
    }

    /** Row {@code row} of {@code matrix[item]} into {@code target} from {@code at}. */
    private static void readRow(BatchedMatrix matrix, FloatBuffer floats, int item, int row, float[] target, int at, float[] column) {
        if (matrix.columnStride() == 1) {
            floats.get(matrix.index(item, row, 0), target, at, matrix.columns());
        } else {
            for (int c = 0; c < matrix.columns(); c++) {
                target[at + c] = floats.get(matrix.index(item, row, c));
            }
        }
    }

    /**
     * One row: {@code dS = (P ⊙ (dP − Σ dP ⊙ P)) ∘ scale} from {@code dP} at {@code dp[dpAt ..]} and
     * {@code P} at {@code p[at ..]}, into {@code dS[at ..]}; each step one IEEE operation, the sum as
     * {@link RowReductionKernel} adds.
     */
    private void softmaxGradient(float[] dp, int dpAt, float[] p, int at, float[] dS) {
        int bound = SPECIES.loopBound(positions);
        FloatVector lanes = FloatVector.zero(SPECIES);
        int i = 0;
        for (; i < bound; i += LANES) {
            lanes = lanes.add(FloatVector.fromArray(SPECIES, dp, dpAt + i).mul(FloatVector.fromArray(SPECIES, p, at + i)));
        }
        float sum = lanes.reduceLanes(VectorOperators.ADD);
        for (; i < positions; i++) {
            sum += dp[dpAt + i] * p[at + i];
        }
        for (i = 0; i < bound; i += LANES) {
            FloatVector gradient = FloatVector.fromArray(SPECIES, dp, dpAt + i).sub(sum).mul(FloatVector.fromArray(SPECIES, p, at + i));
            scaled(gradient).intoArray(dS, at + i);
        }
        for (; i < positions; i++) {
            float gradient = (dp[dpAt + i] - sum) * p[at + i];
            dS[at + i] = scaling == AttentionKernel.Scaling.DIVIDE ? gradient / scale
                    : scaling == AttentionKernel.Scaling.MULTIPLY ? gradient * scale : gradient;
        }
    }

    private FloatVector scaled(FloatVector gradient) {
        return scaling == AttentionKernel.Scaling.DIVIDE ? gradient.div(scale)
                : scaling == AttentionKernel.Scaling.MULTIPLY ? gradient.mul(scale) : gradient;
    }

    /** Rows {@code [0, rows)} of {@code product} (padded to {@code padded}) into gradient {@code which} of {@code item}. */
    private void write(int which, int item, int rows, int columns, int padded, float[] product) {
        int out = gradientStart[which] + item * rows * columns;
        for (int r = 0; r < rows; r++) {
            gradientFloats[which].put(out + r * columns, product, r * padded, columns);
        }
    }
}
