package io.peft4j.runtime.internal.vector;

import java.nio.FloatBuffer;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * A block of rows of one matrix product, {@code c = a · b}, computed from operands packed on the
 * heap: the shared inner part of {@link BatchedProductKernel} and {@link AttentionKernel}.
 *
 * <p>Shapes: {@code a} holds {@code rows ≤ }{@link #ROW_BLOCK} rows of {@code k} values, row-major
 * ({@code a[r · k + j]}) or column-major ({@code a[j · ROW_BLOCK + r]}); {@code b} is {@code k} rows
 * of {@link #paddedColumns paddedColumns(n)} values, zeros past column {@code n}; {@code c} is
 * {@code rows} rows of the same padded width. Operands are copied in by bulk copies of whichever
 * axis is contiguous (a scalar read per element from off-heap memory in the inner loop was 2.5×
 * slower, BENCHMARKS.md change 24); the product is computed four rows by two vectors of columns at a
 * time in registers, and each sum runs over {@code k} in order, one fused multiply-add per term, so
 * every caller gets the same bits for the same operands.
 */
final class BlockProduct {
    static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    static final int LANES = SPECIES.length();
    /** Rows packed and computed at once: a multiple of the four rows computed together. */
    static final int ROW_BLOCK = 64;

    private BlockProduct() {
    }

    /** {@code n} rounded up to whole vectors. */
    static int paddedColumns(int n) {
        return (n + LANES - 1) / LANES * LANES;
    }

    /** Whether {@link #packLeft} packs {@code left}'s rows column by column (its columns are contiguous, its rows not). */
    static boolean columnMajor(BatchedMatrix left) {
        return left.columnStride() != 1 && left.rowStride() == 1;
    }

    /**
     * Copies rows {@code [firstRow, firstRow + rows)} of {@code left[item]} into {@code a}, row-major,
     * or column-major when {@link #columnMajor}; {@code floats} is {@code left.floats()}.
     */
    static void packLeft(BatchedMatrix left, FloatBuffer floats, int item, int firstRow, int rows, float[] a) {
        int k = left.columns();
        if (left.columnStride() == 1) {
            for (int r = 0; r < rows; r++) {
                floats.get(left.index(item, firstRow + r, 0), a, r * k, k);
            }
        } else if (left.rowStride() == 1) {
            for (int j = 0; j < k; j++) {
                floats.get(left.index(item, firstRow, j), a, j * ROW_BLOCK, rows);
            }
        } else {
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < k; j++) {
                    a[r * k + j] = floats.get(left.index(item, firstRow + r, j));
                }
            }
        }
    }

    /**
     * {@code b[j · paddedColumns(n) + c] = right[item](j, c)}, zeros past column {@code n}: rows copied
     * in bulk when contiguous; when the columns are (a transposed operand, the scores' {@code Kᵀ}),
     * each column is copied in bulk into {@code column} and spread across the rows.
     */
    static void packRight(BatchedMatrix right, FloatBuffer floats, int item, float[] b, float[] column) {
        int k = right.rows();
        int n = right.columns();
        int padded = paddedColumns(n);
        for (int j = 0; j < k; j++) {
            Arrays.fill(b, j * padded + n, (j + 1) * padded, 0f);
        }
        if (right.columnStride() == 1) {
            for (int j = 0; j < k; j++) {
                floats.get(right.index(item, j, 0), b, j * padded, n);
            }
        } else if (right.rowStride() == 1) {
            for (int c = 0; c < n; c++) {
                floats.get(right.index(item, 0, c), column, 0, k);
                for (int j = 0; j < k; j++) {
                    b[j * padded + c] = column[j];
                }
            }
        } else {
            for (int j = 0; j < k; j++) {
                for (int c = 0; c < n; c++) {
                    b[j * padded + c] = floats.get(right.index(item, j, c));
                }
            }
        }
    }

    /**
     * {@code c} = the {@code rows × k} block in {@code a} times the packed {@code k × paddedColumns}
     * matrix in {@code b}; element {@code (r, j)} of the block lies at {@code a[r · rowStep + j · columnStep]}.
     */
    static void multiply(float[] a, int rowStep, int columnStep, int rows, int k, float[] b, int paddedColumns, float[] c) {
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            int column = 0;
            for (; column + 2 * LANES <= paddedColumns; column += 2 * LANES) {
                fourRowsTwoVectors(a, rowStep, columnStep, r, k, b, paddedColumns, column, c);
            }
            for (int row = r; row < r + 4 && column < paddedColumns; row++) {
                oneRowOneVector(a, rowStep, columnStep, row, k, b, paddedColumns, column, c);
            }
        }
        for (; r < rows; r++) {
            for (int column = 0; column < paddedColumns; column += LANES) {
                oneRowOneVector(a, rowStep, columnStep, r, k, b, paddedColumns, column, c);
            }
        }
    }

    private static void fourRowsTwoVectors(float[] a, int rowStep, int columnStep, int r, int k, float[] b, int padded, int column,
                                           float[] c) {
        FloatVector c00 = FloatVector.zero(SPECIES);
        FloatVector c01 = FloatVector.zero(SPECIES);
        FloatVector c10 = FloatVector.zero(SPECIES);
        FloatVector c11 = FloatVector.zero(SPECIES);
        FloatVector c20 = FloatVector.zero(SPECIES);
        FloatVector c21 = FloatVector.zero(SPECIES);
        FloatVector c30 = FloatVector.zero(SPECIES);
        FloatVector c31 = FloatVector.zero(SPECIES);
        int a0 = r * rowStep;
        for (int j = 0; j < k; j++) {
            int at = j * padded + column;
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, at);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, at + LANES);
            FloatVector s = FloatVector.broadcast(SPECIES, a[a0]);
            c00 = b0.fma(s, c00);
            c01 = b1.fma(s, c01);
            s = FloatVector.broadcast(SPECIES, a[a0 + rowStep]);
            c10 = b0.fma(s, c10);
            c11 = b1.fma(s, c11);
            s = FloatVector.broadcast(SPECIES, a[a0 + 2 * rowStep]);
            c20 = b0.fma(s, c20);
            c21 = b1.fma(s, c21);
            s = FloatVector.broadcast(SPECIES, a[a0 + 3 * rowStep]);
            c30 = b0.fma(s, c30);
            c31 = b1.fma(s, c31);
            a0 += columnStep;
        }
        int out = r * padded + column;
        c00.intoArray(c, out);
        c01.intoArray(c, out + LANES);
        c10.intoArray(c, out + padded);
        c11.intoArray(c, out + padded + LANES);
        c20.intoArray(c, out + 2 * padded);
        c21.intoArray(c, out + 2 * padded + LANES);
        c30.intoArray(c, out + 3 * padded);
        c31.intoArray(c, out + 3 * padded + LANES);
    }

    private static void oneRowOneVector(float[] a, int rowStep, int columnStep, int r, int k, float[] b, int padded, int column, float[] c) {
        FloatVector sum = FloatVector.zero(SPECIES);
        int a0 = r * rowStep;
        for (int j = 0; j < k; j++) {
            sum = FloatVector.fromArray(SPECIES, b, j * padded + column).fma(FloatVector.broadcast(SPECIES, a[a0]), sum);
            a0 += columnStep;
        }
        sum.intoArray(c, r * padded + column);
    }

    /** One thread's packing arrays, grown to the largest block it has packed. */
    static final class Packing {
        private final float[][] arrays;

        Packing(int count) {
            arrays = new float[count][0];
        }

        /** Array {@code which}, at least {@code length} long. */
        float[] get(int which, int length) {
            if (arrays[which].length < length) {
                arrays[which] = new float[length];
            }
            return arrays[which];
        }
    }
}
