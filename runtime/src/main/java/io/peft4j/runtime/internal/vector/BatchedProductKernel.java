package io.peft4j.runtime.internal.vector;

import java.nio.FloatBuffer;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorMask;
import jdk.incubator.vector.VectorSpecies;

/**
 * A batch of fp32 matrix products, {@code result[item] = left[item] · right[item]}: attention's
 * {@code softmax(QKᵀ) V} and its gradients, {@code matmul} of arrays of rank 3 or more.
 *
 * <p>Shapes: {@code left} is {@code batch} matrices {@code [m, k]} and {@code right} {@code batch}
 * matrices {@code [k, n]}, each with any strides ({@link BatchedMatrix}); {@code result} is
 * {@code [batch, m, n]} contiguous in C order.
 *
 * <p>Why not libnd4j: its {@code matmul} of arrays of rank 3 or more does not call BLAS but loops in
 * its own code, at 52–88 GFLOP/s on MiniLM's {@code [16, 12, 128, 32]} heads (BENCHMARKS.md,
 * change 24). Each block of rows, and its matrix's right operand, is copied into arrays on the heap
 * by bulk copies of whichever axis is contiguous (a scalar read per element from off-heap memory in
 * the inner loop was 2.5× slower), then computed four rows by two vectors of columns at a time in
 * registers; each sum runs over {@code k} in order.
 */
final class BatchedProductKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    /** Rows one task packs and computes: a multiple of the four rows computed at once. */
    private static final int ROW_BLOCK = 64;
    /**
     * A multiply-add here costs about a sixtieth of an element of a memory-bound kernel, the unit of
     * {@link KernelThreads#MIN_PARALLEL_WORK}.
     */
    private static final int MULTIPLY_ADDS_PER_WORK_UNIT = 64;
    private static final ThreadLocal<Packed> PACKED = ThreadLocal.withInitial(Packed::new);

    private final BatchedMatrix left;
    private final BatchedMatrix right;
    private final FloatRegion result;
    private final int m;
    private final int n;
    private final int k;
    /** Columns of the packed right operand: {@code n} rounded up to whole vectors, the rest zeros. */
    private final int paddedColumns;
    private final int rowBlocks;
    /** Where element {@code (r, j)} of a packed block of the left operand lies: {@code r · leftRowStep + j · leftColumnStep}. */
    private final int leftRowStep;
    private final int leftColumnStep;
    private final FloatBuffer leftFloats;
    private final FloatBuffer rightFloats;

    BatchedProductKernel(BatchedMatrix left, BatchedMatrix right, FloatRegion result) {
        this.m = left.rows();
        this.k = left.columns();
        this.n = right.columns();
        if (right.rows() != k || left.batch() != right.batch() || (long) left.batch() * m * n != result.length()) {
            throw new IllegalArgumentException("batched product: " + left.batch() + " × [" + m + ", " + k + "] times " + right.batch()
                    + " × [" + right.rows() + ", " + n + "] into " + result.length() + " elements");
        }
        this.left = left;
        this.right = right;
        this.result = result;
        this.paddedColumns = (n + LANES - 1) / LANES * LANES;
        this.rowBlocks = (m + ROW_BLOCK - 1) / ROW_BLOCK;
        boolean columnMajor = left.columnStride() != 1 && left.rowStride() == 1;
        this.leftRowStep = columnMajor ? 1 : k;
        this.leftColumnStep = columnMajor ? ROW_BLOCK : 1;
        this.leftFloats = left.floats();
        this.rightFloats = right.floats();
    }

    @Override
    public void run() {
        long work = (long) left.batch() * m * n * k / MULTIPLY_ADDS_PER_WORK_UNIT;
        KernelThreads.shared().forRange(left.batch() * rowBlocks, 1, work, this::tasks);
    }

    /** Tasks {@code [from, to)}: task {@code t} is rows block {@code t % rowBlocks} of matrix {@code t / rowBlocks}. */
    private void tasks(int from, int to) {
        Packed packed = PACKED.get();
        float[] a = packed.left(ROW_BLOCK * k);
        float[] b = packed.right(k * paddedColumns);
        int packedItem = -1;
        for (int task = from; task < to; task++) {
            int item = task / rowBlocks;
            int firstRow = task % rowBlocks * ROW_BLOCK;
            int rows = Math.min(ROW_BLOCK, m - firstRow);
            if (item != packedItem) {
                packRight(item, b, packed);
                packedItem = item;
            }
            packLeft(item, firstRow, rows, a);
            int out = result.start() + ((item * m + firstRow) * n) * Float.BYTES;
            multiply(a, b, rows, out);
        }
    }

    /**
     * Copies rows {@code [firstRow, firstRow + rows)} of {@code left[item]} into {@code a}: row-major
     * ({@code a[r · k + j]}) when the rows are contiguous, else column-major
     * ({@code a[j · ROW_BLOCK + r]}) when the columns are, as {@link #leftRowStep} and
     * {@link #leftColumnStep} say; each row or column one bulk copy.
     */
    private void packLeft(int item, int firstRow, int rows, float[] a) {
        if (left.columnStride() == 1) {
            for (int r = 0; r < rows; r++) {
                leftFloats.get(left.index(item, firstRow + r, 0), a, r * k, k);
            }
        } else if (left.rowStride() == 1) {
            for (int j = 0; j < k; j++) {
                leftFloats.get(left.index(item, firstRow, j), a, j * ROW_BLOCK, rows);
            }
        } else {
            for (int r = 0; r < rows; r++) {
                for (int j = 0; j < k; j++) {
                    a[r * k + j] = leftFloats.get(left.index(item, firstRow + r, j));
                }
            }
        }
    }

    /**
     * {@code b[j · paddedColumns + c] = right[item](j, c)}, zeros past column {@code n}: rows copied
     * in bulk when contiguous; when the columns are (a transposed operand, the scores' {@code Kᵀ}),
     * each column is copied in bulk and spread across the rows.
     */
    private void packRight(int item, float[] b, Packed packed) {
        for (int j = 0; j < k; j++) {
            Arrays.fill(b, j * paddedColumns + n, (j + 1) * paddedColumns, 0f);
        }
        if (right.columnStride() == 1) {
            for (int j = 0; j < k; j++) {
                rightFloats.get(right.index(item, j, 0), b, j * paddedColumns, n);
            }
        } else if (right.rowStride() == 1) {
            float[] column = packed.column(k);
            for (int c = 0; c < n; c++) {
                rightFloats.get(right.index(item, 0, c), column, 0, k);
                for (int j = 0; j < k; j++) {
                    b[j * paddedColumns + c] = column[j];
                }
            }
        } else {
            for (int j = 0; j < k; j++) {
                for (int c = 0; c < n; c++) {
                    b[j * paddedColumns + c] = rightFloats.get(right.index(item, j, c));
                }
            }
        }
    }

    /** The packed block of {@code rows} rows times the packed {@code k × n} matrix into the result from byte {@code out}. */
    private void multiply(float[] a, float[] b, int rows, int out) {
        int r = 0;
        for (; r + 4 <= rows; r += 4) {
            int c = 0;
            for (; c + 2 * LANES <= paddedColumns; c += 2 * LANES) {
                fourRowsTwoVectors(a, b, r, c, out);
            }
            for (int row = r; row < r + 4 && c < paddedColumns; row++) {
                oneRowOneVector(a, b, row, c, out);
            }
        }
        for (; r < rows; r++) {
            for (int c = 0; c < paddedColumns; c += LANES) {
                oneRowOneVector(a, b, r, c, out);
            }
        }
    }

    private void fourRowsTwoVectors(float[] a, float[] b, int r, int c, int out) {
        FloatVector c00 = FloatVector.zero(SPECIES);
        FloatVector c01 = FloatVector.zero(SPECIES);
        FloatVector c10 = FloatVector.zero(SPECIES);
        FloatVector c11 = FloatVector.zero(SPECIES);
        FloatVector c20 = FloatVector.zero(SPECIES);
        FloatVector c21 = FloatVector.zero(SPECIES);
        FloatVector c30 = FloatVector.zero(SPECIES);
        FloatVector c31 = FloatVector.zero(SPECIES);
        int rowStep = leftRowStep;
        int columnStep = leftColumnStep;
        int a0 = r * rowStep;
        for (int j = 0; j < k; j++) {
            int at = j * paddedColumns + c;
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
        store(c00, r, c, out);
        store(c01, r, c + LANES, out);
        store(c10, r + 1, c, out);
        store(c11, r + 1, c + LANES, out);
        store(c20, r + 2, c, out);
        store(c21, r + 2, c + LANES, out);
        store(c30, r + 3, c, out);
        store(c31, r + 3, c + LANES, out);
    }

    private void oneRowOneVector(float[] a, float[] b, int r, int c, int out) {
        FloatVector sum = FloatVector.zero(SPECIES);
        int a0 = r * leftRowStep;
        for (int j = 0; j < k; j++) {
            sum = FloatVector.fromArray(SPECIES, b, j * paddedColumns + c).fma(FloatVector.broadcast(SPECIES, a[a0]), sum);
            a0 += leftColumnStep;
        }
        store(sum, r, c, out);
    }

    /** Writes the columns {@code [c, c + LANES)} of row {@code r} of the block, those below {@code n}. */
    private void store(FloatVector value, int r, int c, int out) {
        int at = out + (r * n + c) * Float.BYTES;
        if (c + LANES <= n) {
            value.intoByteBuffer(result.bytes(), at, FloatRegion.ORDER);
        } else {
            VectorMask<Float> inside = SPECIES.indexInRange(c, n);
            value.intoByteBuffer(result.bytes(), at, FloatRegion.ORDER, inside);
        }
    }

    /** One thread's packing arrays, grown to the largest product it has computed. */
    private static final class Packed {
        private float[] left = new float[0];
        private float[] right = new float[0];
        private float[] column = new float[0];

        float[] left(int length) {
            if (left.length < length) {
                left = new float[length];
            }
            return left;
        }

        float[] column(int length) {
            if (column.length < length) {
                column = new float[length];
            }
            return column;
        }

        float[] right(int length) {
            if (right.length < length) {
                right = new float[length];
            }
            return right;
        }
    }
}
