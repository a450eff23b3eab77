package io.peft4j.runtime.internal.vector;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import java.util.Arrays;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorSpecies;

/**
 * A product summed over a long axis into a small result, {@code result = left · right} with
 * {@code left [m, t]} and {@code right [t, n]}, {@code t} the longest side and {@code m} or {@code n}
 * small: the gradients of LoRA's factors, {@code dA = xᵀ · dz} ({@code [in, r]}) and
 * {@code dB = zᵀ · dY} ({@code [r, out]}), summed over every token.
 *
 * <p>Shapes: {@code left} one matrix {@code [m, t]} and {@code right} one matrix {@code [t, n]}
 * ({@link BatchedMatrix}); the operand on the wide side of the result ({@code right} when
 * {@code m ≤ n}, else {@code left}) must have unit stride along it. {@code result} {@code [m, n]}
 * contiguous in C order.
 *
 * <p>The result is the sum over {@code t} of outer products of a row of the narrow operand and a row
 * of the wide one. The narrow operand is copied to the heap once per call; threads split the wide
 * side, and each vector of its columns is summed against eight narrow columns at a time over every
 * token, the eight sums held in registers. Every element is summed over {@code t} in order by fused
 * multiply-adds, so the result does not depend on the number of threads. Why not BLAS: see
 * {@link LowRankProductKernel}.
 */
final class OuterProductSumKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    /** Narrow columns summed together, each in its own register. */
    private static final int NARROW_BLOCK = 8;
    private static final ThreadLocal<float[][]> SUMS = ThreadLocal.withInitial(() -> new float[2][0]);

    private final int tokens;
    private final int narrow;
    private final int paddedNarrow;
    private final int wide;
    private final boolean transposedResult;
    private final BatchedMatrix narrowSide;
    private final FloatBuffer narrowFloats;
    /** The narrow operand {@code [tokens, paddedNarrow]}, zero beyond its columns. */
    private final float[] packedNarrow;
    private final ByteBuffer wideBytes;
    private final int wideStart;
    private final int wideTokenStride;
    private final FloatBuffer resultFloats;
    private final int resultStart;

    OuterProductSumKernel(BatchedMatrix left, BatchedMatrix right, FloatRegion result) {
        int m = left.rows();
        int n = right.columns();
        this.tokens = left.columns();
        if (left.batch() != 1 || right.batch() != 1 || right.rows() != tokens || (long) m * n != result.length()) {
            throw new IllegalArgumentException("outer-product sum: [" + m + ", " + tokens + "] times [" + right.rows() + ", " + n + "] into "
                    + result.length() + " elements");
        }
        this.transposedResult = m > n;
        this.narrowSide = transposedResult ? right : left.transposed();
        BatchedMatrix wideSide = transposedResult ? left.transposed() : right;
        if (wideSide.columnStride() != 1) {
            throw new IllegalArgumentException("outer-product sum: the wide operand [" + wideSide.rows() + ", " + wideSide.columns()
                    + "] is strided along its " + wideSide.columns() + " columns");
        }
        this.narrow = narrowSide.columns();
        this.paddedNarrow = (narrow + NARROW_BLOCK - 1) / NARROW_BLOCK * NARROW_BLOCK;
        this.wide = wideSide.columns();
        this.narrowFloats = narrowSide.floats();
        this.packedNarrow = new float[tokens * paddedNarrow];
        this.wideBytes = wideSide.bytes();
        this.wideStart = wideSide.at(0, 0, 0);
        this.wideTokenStride = wideSide.rowStride() * Float.BYTES;
        this.resultFloats = result.floats();
        this.resultStart = result.start() / Float.BYTES;
    }

    /** Whether {@code left · right} has the form this kernel computes. */
    static boolean covers(BatchedMatrix left, BatchedMatrix right) {
        boolean transposed = left.rows() > right.columns();
        return (transposed ? left.rowStride() : right.columnStride()) == 1;
    }

    @Override
    public void run() {
        packNarrow();
        // one share per thread: each share re-reads the whole narrow operand, however few columns it has
        KernelThreads threads = KernelThreads.shared();
        int vectors = (wide + SPECIES.length() - 1) / SPECIES.length();
        int share = (vectors + threads.threads() - 1) / threads.threads() * SPECIES.length();
        int shares = (wide + share - 1) / share;
        threads.forRange(shares, 1, (long) tokens * (wide + narrow), (from, to) -> columns(from * share, Math.min(to * share, wide)));
    }

    private void packNarrow() {
        if (narrowSide.columnStride() == 1 && narrowSide.rowStride() == paddedNarrow) {
            narrowFloats.get(narrowSide.index(0, 0, 0), packedNarrow, 0, tokens * paddedNarrow);
            return;
        }
        for (int t = 0; t < tokens; t++) {
            for (int s = 0; s < narrow; s++) {
                packedNarrow[t * paddedNarrow + s] = narrowFloats.get(narrowSide.index(0, t, s));
            }
        }
    }

    /** Columns {@code [from, to)} of the wide side, summed over every token, then written. */
    private void columns(int from, int to) {
        int width = to - from;
        float[][] buffers = SUMS.get();
        if (buffers[0].length < paddedNarrow * width) {
            buffers[0] = new float[paddedNarrow * width];
            buffers[1] = new float[paddedNarrow * width];
        }
        float[] sums = buffers[0];
        int column = from;
        for (int bound = from + SPECIES.loopBound(width); column < bound; column += SPECIES.length()) {
            for (int block = 0; block < paddedNarrow; block += NARROW_BLOCK) {
                sumColumnVector(column, block, sums, width, column - from);
            }
        }
        for (; column < to; column++) {
            for (int s = 0; s < narrow; s++) {
                float sum = 0f;
                int wideAt = wideStart + column * Float.BYTES;
                for (int t = 0; t < tokens; t++, wideAt += wideTokenStride) {
                    sum = Math.fma(wideBytes.getFloat(wideAt), packedNarrow[t * paddedNarrow + s], sum);
                }
                sums[s * width + column - from] = sum;
            }
        }
        if (!transposedResult) {
            for (int s = 0; s < narrow; s++) {
                resultFloats.put(resultStart + s * wide + from, sums, s * width, width);
            }
            return;
        }
        float[] rows = buffers[1];
        for (int s = 0; s < narrow; s++) {
            for (int c = 0; c < width; c++) {
                rows[c * narrow + s] = sums[s * width + c];
            }
        }
        resultFloats.put(resultStart + from * narrow, rows, 0, width * narrow);
    }

    /**
     * One vector of wide columns from {@code column} times narrow columns {@code [block, block + 8)},
     * summed over every token in registers, into rows {@code block …} of {@code sums} (rows of
     * {@code width}) at {@code at}.
     */
    private void sumColumnVector(int column, int block, float[] sums, int width, int at) {
        FloatVector s0 = FloatVector.zero(SPECIES);
        FloatVector s1 = s0;
        FloatVector s2 = s0;
        FloatVector s3 = s0;
        FloatVector s4 = s0;
        FloatVector s5 = s0;
        FloatVector s6 = s0;
        FloatVector s7 = s0;
        int wideAt = wideStart + column * Float.BYTES;
        for (int t = 0, n = block; t < tokens; t++, n += paddedNarrow, wideAt += wideTokenStride) {
            FloatVector w = FloatVector.fromByteBuffer(SPECIES, wideBytes, wideAt, FloatRegion.ORDER);
            s0 = w.fma(FloatVector.broadcast(SPECIES, packedNarrow[n]), s0);
            s1 = w.fma(FloatVector.broadcast(SPECIES, packedNarrow[n + 1]), s1);
            s2 = w.fma(FloatVector.broadcast(SPECIES, packedNarrow[n + 2]), s2);
            s3 = w.fma(FloatVector.broadcast(SPECIES, packedNarrow[n + 3]), s3);
            s4 = w.fma(FloatVector.broadcast(SPECIES, packedNarrow[n + 4]), s4);
            s5 = w.fma(FloatVector.broadcast(SPECIES, packedNarrow[n + 5]), s5);
            s6 = w.fma(FloatVector.broadcast(SPECIES, packedNarrow[n + 6]), s6);
            s7 = w.fma(FloatVector.broadcast(SPECIES, packedNarrow[n + 7]), s7);
        }
        // rows past the narrow side's end are padding: the sums buffer has room for them
        int row = block * width + at;
        s0.intoArray(sums, row);
        s1.intoArray(sums, row + width);
        s2.intoArray(sums, row + 2 * width);
        s3.intoArray(sums, row + 3 * width);
        s4.intoArray(sums, row + 4 * width);
        s5.intoArray(sums, row + 5 * width);
        s6.intoArray(sums, row + 6 * width);
        s7.intoArray(sums, row + 7 * width);
    }
}
