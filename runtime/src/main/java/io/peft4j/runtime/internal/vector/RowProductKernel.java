package io.peft4j.runtime.internal.vector;

import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A matrix times a vector in fp32, the product of one row in an eager decoding step (BLAS's gemv).
 *
 * <p>Shapes: {@code matrix [rows, columns]} contiguous in C order. {@link Layout#TRANSPOSED}:
 * {@code vector [rows]}, {@code result [columns]}, {@code result = matrixᵀ · vector} (a row times a
 * weight stored {@code [in, out]}); {@link Layout#PLAIN}: {@code vector [columns]},
 * {@code result [rows]}, {@code result = matrix · vector} (a weight stored {@code [out, in]}).
 *
 * <p>Why not libnd4j: a gemv of a 256-wide layer is a few microseconds of arithmetic, and a call into
 * libnd4j costs 15–60 µs around it, most of a decoding step (BENCHMARKS.md, change 22). The sums run
 * in another order than BLAS's, so results differ from libnd4j's in the last bits.
 */
final class RowProductKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    /**
     * Below this many matrix elements the product runs on the calling thread alone: waking a second
     * thread made a 256 × 1024 product slower on the development machine (60–84 µs against 29–61).
     */
    private static final long PARALLEL_FROM = 4_000_000;
    /** Columns one task of the transposed product accumulates at once: four vectors, kept in registers. */
    private static final int BLOCK = 4 * LANES;

    /** Which product of the matrix: see the class comment. */
    enum Layout {
        TRANSPOSED, PLAIN
    }

    private final FloatRegion matrix;
    private final FloatRegion vector;
    private final FloatRegion result;
    private final int rows;
    private final int columns;
    private final Layout layout;

    RowProductKernel(FloatRegion matrix, int rows, int columns, FloatRegion vector, FloatRegion result, Layout layout) {
        int in = layout == Layout.TRANSPOSED ? rows : columns;
        int out = layout == Layout.TRANSPOSED ? columns : rows;
        if ((long) rows * columns != matrix.length() || vector.length() != in || result.length() != out) {
            throw new IllegalArgumentException("matrix-vector product (" + layout + "): matrix of " + matrix.length() + " elements as ["
                    + rows + ", " + columns + "], vector of " + vector.length() + ", result of " + result.length());
        }
        this.matrix = matrix;
        this.vector = vector;
        this.result = result;
        this.rows = rows;
        this.columns = columns;
        this.layout = layout;
    }

    @Override
    public void run() {
        long work = (long) rows * columns;
        int blocks = (columns + BLOCK - 1) / BLOCK;
        if (work < PARALLEL_FROM) {
            if (layout == Layout.TRANSPOSED) {
                columnBlocks(0, blocks);
            } else {
                rowDots(0, rows);
            }
        } else if (layout == Layout.TRANSPOSED) {
            KernelThreads.shared().forRange(blocks, 1, work, this::columnBlocks);
        } else {
            KernelThreads.shared().forRange(rows, 1, work, this::rowDots);
        }
    }

    /** {@code result[j] = Σ_i vector[i] · matrix[i, j]} for the columns of blocks {@code [from, to)}. */
    private void columnBlocks(int from, int to) {
        int end = Math.min(columns, to * BLOCK);
        int j = from * BLOCK;
        for (; j + BLOCK <= end; j += BLOCK) {
            FloatVector a0 = FloatVector.zero(SPECIES);
            FloatVector a1 = FloatVector.zero(SPECIES);
            FloatVector a2 = FloatVector.zero(SPECIES);
            FloatVector a3 = FloatVector.zero(SPECIES);
            for (int i = 0; i < rows; i++) {
                FloatVector s = FloatVector.broadcast(SPECIES, vector.get(i));
                int at = matrix.at(i * columns + j);
                a0 = load(matrix, at).fma(s, a0);
                a1 = load(matrix, at + LANES * Float.BYTES).fma(s, a1);
                a2 = load(matrix, at + 2 * LANES * Float.BYTES).fma(s, a2);
                a3 = load(matrix, at + 3 * LANES * Float.BYTES).fma(s, a3);
            }
            store(a0, j);
            store(a1, j + LANES);
            store(a2, j + 2 * LANES);
            store(a3, j + 3 * LANES);
        }
        for (; j + LANES <= end; j += LANES) {
            FloatVector a = FloatVector.zero(SPECIES);
            for (int i = 0; i < rows; i++) {
                a = load(matrix, matrix.at(i * columns + j)).fma(FloatVector.broadcast(SPECIES, vector.get(i)), a);
            }
            store(a, j);
        }
        for (; j < end; j++) {
            float sum = 0f;
            for (int i = 0; i < rows; i++) {
                sum = Math.fma(vector.get(i), matrix.get(i * columns + j), sum);
            }
            result.put(j, sum);
        }
    }

    /** {@code result[r] = matrix[r, :] · vector} for the rows {@code [from, to)}. */
    private void rowDots(int from, int to) {
        for (int r = from; r < to; r++) {
            int row = r * columns;
            FloatVector a0 = FloatVector.zero(SPECIES);
            FloatVector a1 = FloatVector.zero(SPECIES);
            int k = 0;
            for (; k + 2 * LANES <= columns; k += 2 * LANES) {
                a0 = load(matrix, matrix.at(row + k)).fma(load(vector, vector.at(k)), a0);
                a1 = load(matrix, matrix.at(row + k + LANES)).fma(load(vector, vector.at(k + LANES)), a1);
            }
            for (; k + LANES <= columns; k += LANES) {
                a0 = load(matrix, matrix.at(row + k)).fma(load(vector, vector.at(k)), a0);
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; k < columns; k++) {
                sum = Math.fma(matrix.get(row + k), vector.get(k), sum);
            }
            result.put(r, sum);
        }
    }

    private void store(FloatVector value, int column) {
        value.intoByteBuffer(result.bytes(), result.at(column), FloatRegion.ORDER);
    }

    private static FloatVector load(FloatRegion region, int byteOffset) {
        return FloatVector.fromByteBuffer(SPECIES, region.bytes(), byteOffset, FloatRegion.ORDER);
    }
}
