package io.peft4j.runtime.internal.vector;

import java.nio.FloatBuffer;

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
 * change 24). Each task is one block of 64 rows of one matrix, packed with its matrix's right
 * operand and multiplied by {@link BlockProduct}, then copied into the result row by row.
 */
final class BatchedProductKernel implements Runnable {
    /**
     * A multiply-add here costs about a sixtieth of an element of a memory-bound kernel, the unit of
     * {@link KernelThreads#MIN_PARALLEL_WORK}.
     */
    static final int MULTIPLY_ADDS_PER_WORK_UNIT = 64;
    private static final int LEFT = 0;
    private static final int RIGHT = 1;
    private static final int COLUMN = 2;
    private static final int PRODUCT = 3;
    private static final ThreadLocal<BlockProduct.Packing> PACKING = ThreadLocal.withInitial(() -> new BlockProduct.Packing(4));

    private final BatchedMatrix left;
    private final BatchedMatrix right;
    private final int m;
    private final int n;
    private final int k;
    private final int paddedColumns;
    private final int rowBlocks;
    /** Where element {@code (r, j)} of a packed block of the left operand lies: {@code r · leftRowStep + j · leftColumnStep}. */
    private final int leftRowStep;
    private final int leftColumnStep;
    private final FloatBuffer leftFloats;
    private final FloatBuffer rightFloats;
    private final FloatBuffer resultFloats;
    private final int resultStart;

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
        this.paddedColumns = BlockProduct.paddedColumns(n);
        this.rowBlocks = (m + BlockProduct.ROW_BLOCK - 1) / BlockProduct.ROW_BLOCK;
        boolean columnMajor = BlockProduct.columnMajor(left);
        this.leftRowStep = columnMajor ? 1 : k;
        this.leftColumnStep = columnMajor ? BlockProduct.ROW_BLOCK : 1;
        this.leftFloats = left.floats();
        this.rightFloats = right.floats();
        this.resultFloats = result.floats();
        this.resultStart = result.start() / Float.BYTES;
    }

    @Override
    public void run() {
        long work = (long) left.batch() * m * n * k / MULTIPLY_ADDS_PER_WORK_UNIT;
        KernelThreads.shared().forRange(left.batch() * rowBlocks, 1, work, this::tasks);
    }

    /** Tasks {@code [from, to)}: task {@code t} is rows block {@code t % rowBlocks} of matrix {@code t / rowBlocks}. */
    private void tasks(int from, int to) {
        BlockProduct.Packing packing = PACKING.get();
        float[] a = packing.get(LEFT, BlockProduct.ROW_BLOCK * k);
        float[] b = packing.get(RIGHT, k * paddedColumns);
        float[] column = packing.get(COLUMN, k);
        float[] c = packing.get(PRODUCT, BlockProduct.ROW_BLOCK * paddedColumns);
        int packedItem = -1;
        for (int task = from; task < to; task++) {
            int item = task / rowBlocks;
            int firstRow = task % rowBlocks * BlockProduct.ROW_BLOCK;
            int rows = Math.min(BlockProduct.ROW_BLOCK, m - firstRow);
            if (item != packedItem) {
                BlockProduct.packRight(right, rightFloats, item, b, column);
                packedItem = item;
            }
            BlockProduct.packLeft(left, leftFloats, item, firstRow, rows, a);
            BlockProduct.multiply(a, leftRowStep, leftColumnStep, rows, k, b, paddedColumns, c);
            int out = resultStart + (item * m + firstRow) * n;
            for (int r = 0; r < rows; r++) {
                resultFloats.put(out + r * n, c, r * paddedColumns, n);
            }
        }
    }
}
