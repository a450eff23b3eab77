package io.peft4j.runtime.internal.vector;

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
 * its own code, at 52–88 GFLOP/s on MiniLM's {@code [16, 12, 128, 32]} heads against over 300 here
 * (BENCHMARKS.md, change 24). Each block of rows is packed with its matrix's right operand into
 * contiguous arrays, then computed four rows by two vectors of columns at a time in registers; each
 * sum runs over {@code k} in order, so results differ from libnd4j's in the last bits.
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
                packRight(item, b);
                packedItem = item;
            }
            packLeft(item, firstRow, rows, a);
            int out = result.start() + ((item * m + firstRow) * n) * Float.BYTES;
            multiply(a, b, rows, out);
        }
    }

    /** {@code a[r · k + j] = left[item](firstRow + r, j)}. */
    private void packLeft(int item, int firstRow, int rows, float[] a) {
        if (left.columnStride() == 1) {
            for (int r = 0; r < rows; r++) {
                copyRow(left, left.at(item, firstRow + r, 0), a, r * k, k);
            }
        } else {
            for (int j = 0; j < k; j++) {
                for (int r = 0; r < rows; r++) {
                    a[r * k + j] = left.bytes().getFloat(left.at(item, firstRow + r, j));
                }
            }
        }
    }

    /** {@code b[j · paddedColumns + c] = right[item](j, c)}, zeros past column {@code n}. */
    private void packRight(int item, float[] b) {
        for (int j = 0; j < k; j++) {
            java.util.Arrays.fill(b, j * paddedColumns + n, (j + 1) * paddedColumns, 0f);
        }
        if (right.columnStride() == 1) {
            for (int j = 0; j < k; j++) {
                copyRow(right, right.at(item, j, 0), b, j * paddedColumns, n);
            }
        } else {
            for (int c = 0; c < n; c++) {
                for (int j = 0; j < k; j++) {
                    b[j * paddedColumns + c] = right.bytes().getFloat(right.at(item, j, c));
                }
            }
        }
    }

    private static void copyRow(BatchedMatrix source, int byteOffset, float[] target, int targetStart, int length) {
        int i = 0;
        for (; i + LANES <= length; i += LANES) {
            FloatVector.fromByteBuffer(SPECIES, source.bytes(), byteOffset + i * Float.BYTES, FloatRegion.ORDER).intoArray(target, targetStart + i);
        }
        for (; i < length; i++) {
            target[targetStart + i] = source.bytes().getFloat(byteOffset + i * Float.BYTES);
        }
    }

    /** The packed {@code rows × k} block times the packed {@code k × n} matrix into the result from byte {@code out}. */
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
        int a0 = r * k;
        for (int j = 0; j < k; j++) {
            int at = j * paddedColumns + c;
            FloatVector b0 = FloatVector.fromArray(SPECIES, b, at);
            FloatVector b1 = FloatVector.fromArray(SPECIES, b, at + LANES);
            FloatVector s = FloatVector.broadcast(SPECIES, a[a0 + j]);
            c00 = b0.fma(s, c00);
            c01 = b1.fma(s, c01);
            s = FloatVector.broadcast(SPECIES, a[a0 + k + j]);
            c10 = b0.fma(s, c10);
            c11 = b1.fma(s, c11);
            s = FloatVector.broadcast(SPECIES, a[a0 + 2 * k + j]);
            c20 = b0.fma(s, c20);
            c21 = b1.fma(s, c21);
            s = FloatVector.broadcast(SPECIES, a[a0 + 3 * k + j]);
            c30 = b0.fma(s, c30);
            c31 = b1.fma(s, c31);
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
        int a0 = r * k;
        for (int j = 0; j < k; j++) {
            sum = FloatVector.fromArray(SPECIES, b, j * paddedColumns + c).fma(FloatVector.broadcast(SPECIES, a[a0 + j]), sum);
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

        float[] left(int length) {
            if (left.length < length) {
                left = new float[length];
            }
            return left;
        }

        float[] right(int length) {
            if (right.length < length) {
                right = new float[length];
            }
            return right;
        }
    }
}
