package io.peft4j.runtime.internal.vector;

import java.nio.FloatBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * A tall matrix times a small one, {@code result = left · right}, where the right operand has few
 * rows or few columns: LoRA's {@code x · A} ({@code [tokens, in] × [in, r]}) and {@code z · B}
 * ({@code [tokens, r] × [r, out]}), and in the gradient {@code dY · Bᵀ} and {@code dz · Aᵀ}.
 *
 * <p>Shapes: {@code left} one matrix {@code [m, k]} and {@code right} one matrix {@code [k, n]},
 * each with any strides ({@link BatchedMatrix}); {@code result} {@code [m, n]} contiguous in C order.
 *
 * <p>Why not BLAS: OpenBLAS's GEMM runs these shapes at a tenth of its peak, since one side of the
 * product is too thin to block (BENCHMARKS.md, change 29). Here the right operand is packed once per
 * call, and each group of eight rows of the left runs as a chain of fused multiply-adds per column
 * vector, reading each left row once. Every element is summed over {@code k} in order, whatever the
 * threads or row grouping, so the result does not depend on how the rows are split.
 */
final class LowRankProductKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    /** Rows computed together: eight independent chains of multiply-adds keep both FMA units busy. */
    private static final int ROWS = 8;
    private static final ThreadLocal<float[][]> ROW_BUFFERS = ThreadLocal.withInitial(() -> new float[3][0]);

    private final BatchedMatrix left;
    private final BatchedMatrix right;
    private final int m;
    private final int k;
    private final int n;
    private final int paddedColumns;
    private final float[] packedRight;
    private final FloatBuffer leftFloats;
    private final FloatBuffer rightFloats;
    private final FloatBuffer resultFloats;
    private final int resultStart;
    private final FloatBuffer addendFloats;
    private final int addendStart;

    /** {@code result = left · right}, or {@code addend + left · right} when {@code addend} (shaped as the result) is given. */
    LowRankProductKernel(BatchedMatrix left, BatchedMatrix right, FloatRegion result, FloatRegion addend) {
        this.m = left.rows();
        this.k = left.columns();
        this.n = right.columns();
        if (left.batch() != 1 || right.batch() != 1 || right.rows() != k || (long) m * n != result.length()
                || (addend != null && addend.length() != result.length())) {
            throw new IllegalArgumentException("low-rank product: [" + m + ", " + k + "] times [" + right.rows() + ", " + n + "] into "
                    + result.length() + " elements");
        }
        this.left = left;
        this.right = right;
        this.paddedColumns = SPECIES.loopBound(n + SPECIES.length() - 1);
        this.packedRight = new float[k * paddedColumns];
        this.leftFloats = left.floats();
        this.rightFloats = right.floats();
        this.resultFloats = result.floats();
        this.resultStart = result.start() / Float.BYTES;
        this.addendFloats = addend == null ? null : addend.floats();
        this.addendStart = addend == null ? 0 : addend.start() / Float.BYTES;
    }

    @Override
    public void run() {
        for (int row = 0; row < k; row++) {
            for (int column = 0; column < n; column++) {
                packedRight[row * paddedColumns + column] = rightFloats.get(right.index(0, row, column));
            }
        }
        KernelThreads.shared().forRange(m, ROWS, (long) m * (k + n), this::rows);
    }

    private void rows(int from, int to) {
        float[][] buffers = ROW_BUFFERS.get();
        if (buffers[0].length < ROWS * k || buffers[1].length < ROWS * paddedColumns) {
            buffers[0] = new float[ROWS * k];
            buffers[1] = new float[ROWS * paddedColumns];
            buffers[2] = new float[paddedColumns];
        }
        float[] rows = buffers[0];
        float[] products = buffers[1];
        float[] addendRow = buffers[2];
        int row = from;
        for (; row + ROWS <= to; row += ROWS) {
            for (int r = 0; r < ROWS; r++) {
                copyLeftRow(row + r, rows, r * k);
            }
            eightRows(rows, products);
            for (int r = 0; r < ROWS; r++) {
                write(row + r, products, r * paddedColumns, addendRow);
            }
        }
        for (; row < to; row++) {
            copyLeftRow(row, rows, 0);
            oneRow(rows, products);
            write(row, products, 0, addendRow);
        }
    }

    /** Row {@code row} of the result from {@code products[at …]}, the addend's row added first if there is one. */
    private void write(int row, float[] products, int at, float[] addendRow) {
        if (addendFloats != null) {
            addendFloats.get(addendStart + row * n, addendRow, 0, n);
            int column = 0;
            for (int bound = SPECIES.loopBound(n); column < bound; column += SPECIES.length()) {
                FloatVector.fromArray(SPECIES, addendRow, column).add(FloatVector.fromArray(SPECIES, products, at + column))
                        .intoArray(products, at + column);
            }
            for (; column < n; column++) {
                products[at + column] = addendRow[column] + products[at + column];
            }
        }
        resultFloats.put(resultStart + row * n, products, at, n);
    }

    private void copyLeftRow(int row, float[] into, int at) {
        if (left.columnStride() == 1) {
            leftFloats.get(left.index(0, row, 0), into, at, k);
            return;
        }
        for (int j = 0; j < k; j++) {
            into[at + j] = leftFloats.get(left.index(0, row, j));
        }
    }

    private void eightRows(float[] rows, float[] products) {
        for (int column = 0; column < paddedColumns; column += SPECIES.length()) {
            FloatVector s0 = FloatVector.zero(SPECIES);
            FloatVector s1 = s0;
            FloatVector s2 = s0;
            FloatVector s3 = s0;
            FloatVector s4 = s0;
            FloatVector s5 = s0;
            FloatVector s6 = s0;
            FloatVector s7 = s0;
            for (int j = 0; j < k; j++) {
                FloatVector w = FloatVector.fromArray(SPECIES, packedRight, j * paddedColumns + column);
                s0 = w.fma(FloatVector.broadcast(SPECIES, rows[j]), s0);
                s1 = w.fma(FloatVector.broadcast(SPECIES, rows[k + j]), s1);
                s2 = w.fma(FloatVector.broadcast(SPECIES, rows[2 * k + j]), s2);
                s3 = w.fma(FloatVector.broadcast(SPECIES, rows[3 * k + j]), s3);
                s4 = w.fma(FloatVector.broadcast(SPECIES, rows[4 * k + j]), s4);
                s5 = w.fma(FloatVector.broadcast(SPECIES, rows[5 * k + j]), s5);
                s6 = w.fma(FloatVector.broadcast(SPECIES, rows[6 * k + j]), s6);
                s7 = w.fma(FloatVector.broadcast(SPECIES, rows[7 * k + j]), s7);
            }
            s0.intoArray(products, column);
            s1.intoArray(products, paddedColumns + column);
            s2.intoArray(products, 2 * paddedColumns + column);
            s3.intoArray(products, 3 * paddedColumns + column);
            s4.intoArray(products, 4 * paddedColumns + column);
            s5.intoArray(products, 5 * paddedColumns + column);
            s6.intoArray(products, 6 * paddedColumns + column);
            s7.intoArray(products, 7 * paddedColumns + column);
        }
    }

    private void oneRow(float[] row, float[] products) {
        for (int column = 0; column < paddedColumns; column += SPECIES.length()) {
            FloatVector sum = FloatVector.zero(SPECIES);
            for (int j = 0; j < k; j++) {
                sum = FloatVector.fromArray(SPECIES, packedRight, j * paddedColumns + column).fma(FloatVector.broadcast(SPECIES, row[j]), sum);
            }
            sum.intoArray(products, column);
        }
    }
}
