package io.peft4j.runtime.internal.vector;

import java.nio.ByteBuffer;
import java.nio.FloatBuffer;
import jdk.incubator.vector.FloatVector;
import jdk.incubator.vector.VectorOperators;
import jdk.incubator.vector.VectorSpecies;

/**
 * A few rows times a matrix in fp32, the products of an eager decoding step: one row per generated
 * token (BLAS's gemv), a few for a prompt.
 *
 * <p>Shapes: {@code matrix [rows, columns]} contiguous in C order. {@link Layout#TRANSPOSED}:
 * {@code input [count, rows]}, {@code result [count, columns]}, {@code result = input · matrix (+ bias
 * [columns])} (rows times a weight stored {@code [in, out]}); {@link Layout#PLAIN}, one row only:
 * {@code input [columns]}, {@code result [rows]}, {@code result = matrix · input} (a weight stored
 * {@code [out, in]}).
 *
 * <p>Why not libnd4j: a gemv of a 256-wide layer is a few microseconds of arithmetic, and a call into
 * libnd4j costs 15–60 µs around it, most of a decoding step (BENCHMARKS.md, change 22). The
 * transposed product streams the matrix once, eight rows at a time, into sums kept on the heap, and
 * uses each loaded piece of the matrix for every input row: the step's weights (megabytes) come from
 * the last-level cache, and their stream is the cost (change 32). Each result element is summed over
 * the matrix's rows in order, whatever the number of input rows or threads, so a prompt's rows get the
 * bits its tokens would get one by one; they differ from libnd4j's in the last bits.
 */
final class RowProductKernel implements Runnable {
    private static final VectorSpecies<Float> SPECIES = FloatVector.SPECIES_PREFERRED;
    private static final int LANES = SPECIES.length();
    private static final int VECTOR_BYTES = LANES * Float.BYTES;
    /** Columns of several input rows' sums kept in registers at once: four vectors. */
    private static final int BLOCK = 4 * LANES;
    /** Input rows this kernel takes: beyond them a BLAS matrix product blocks better. */
    static final int MAX_INPUT_ROWS = 16;
    /**
     * Below this many matrix elements the product runs on the calling thread alone: waking a second
     * thread made a 256 × 1024 product slower on the development machine (60–84 µs against 29–61).
     */
    private static final long PARALLEL_FROM = 4_000_000;

    /** Which product of the matrix: see the class comment. */
    enum Layout {
        TRANSPOSED, PLAIN
    }

    private final FloatRegion matrix;
    private final FloatRegion input;
    private final FloatRegion bias;
    private final FloatRegion result;
    private final int count;
    private final int rows;
    private final int columns;
    private final Layout layout;
    private final FloatBuffer inputFloats;
    private final FloatBuffer resultFloats;
    private final FloatBuffer biasFloats;
    private final float[] inputCopy;
    private final float[] sums;
    private final float[] biasCopy;

    /** One row: {@code input} is the vector of the class comment. */
    RowProductKernel(FloatRegion matrix, int rows, int columns, FloatRegion input, FloatRegion result, Layout layout) {
        this(matrix, rows, columns, 1, input, null, result, layout);
    }

    /** {@code count} input rows ({@link Layout#TRANSPOSED} only when more than one), {@code bias} optional. */
    RowProductKernel(FloatRegion matrix, int rows, int columns, int count, FloatRegion input, FloatRegion bias, FloatRegion result,
            Layout layout) {
        int in = layout == Layout.TRANSPOSED ? rows : columns;
        int out = layout == Layout.TRANSPOSED ? columns : rows;
        if ((long) rows * columns != matrix.length() || count < 1 || count > MAX_INPUT_ROWS || (count > 1 || bias != null) && layout != Layout.TRANSPOSED
                || input.length() != (long) count * in || result.length() != (long) count * out || bias != null && bias.length() != out) {
            throw new IllegalArgumentException("product of " + count + " row(s) (" + layout + "): matrix of " + matrix.length() + " elements as ["
                    + rows + ", " + columns + "], input of " + input.length() + ", result of " + result.length()
                    + (bias == null ? "" : ", bias of " + bias.length()));
        }
        this.matrix = matrix;
        this.input = input;
        this.bias = bias;
        this.result = result;
        this.count = count;
        this.rows = rows;
        this.columns = columns;
        this.layout = layout;
        this.inputFloats = input.floats();
        this.resultFloats = result.floats();
        this.biasFloats = bias == null ? null : bias.floats();
        this.inputCopy = new float[count * in];
        this.sums = layout == Layout.TRANSPOSED ? new float[count * columns] : null;
        this.biasCopy = bias == null ? null : new float[out];
    }

    @Override
    public void run() {
        // The input is read once per matrix row or column: a heap copy keeps those reads out of the byte buffer.
        inputFloats.get(input.start() / Float.BYTES, inputCopy, 0, inputCopy.length);
        long work = (long) rows * columns * count;
        if (layout == Layout.PLAIN) {
            if (work < PARALLEL_FROM) {
                rowDots(0, rows);
            } else {
                KernelThreads.shared().forRange(rows, 1, work, this::rowDots);
            }
            return;
        }
        if (biasFloats != null) {
            biasFloats.get(bias.start() / Float.BYTES, biasCopy, 0, columns);
        }
        int vectors = (columns + LANES - 1) / LANES;
        if (work < PARALLEL_FROM) {
            columnRange(0, vectors);
        } else {
            KernelThreads.shared().forRange(vectors, 1, work, this::columnRange);
        }
    }

    /**
     * The transposed product's columns {@code [from · LANES, to · LANES)} (clipped to the matrix).
     * Several input rows: whole blocks of {@link #BLOCK} columns four rows at a time in registers,
     * what is left streamed like one row. One row: sums zeroed, the matrix streamed eight rows at a
     * time. Then each row's sums are written out.
     */
    private void columnRange(int from, int to) {
        int start = from * LANES;
        int end = Math.min(columns, to * LANES);
        int streamed = start;
        if (count > 1) {
            streamed = start + (end - start) / BLOCK * BLOCK;
            for (int j = start; j < streamed; j += BLOCK) {
                for (int r = 0; r < count; r += 4) {
                    fourRowsBlock(r, j);
                }
            }
        }
        for (int r = 0; r < count; r++) {
            java.util.Arrays.fill(sums, r * columns + streamed, r * columns + end, 0f);
        }
        int i = 0;
        for (; i + 8 <= rows && streamed < end; i += 8) {
            eightRows(i, streamed, end);
        }
        for (; i < rows && streamed < end; i++) {
            oneRow(i, streamed, end);
        }
        for (int r = 0; r < count; r++) {
            int at = r * columns;
            if (biasCopy != null) {
                for (int j = start; j < end; j++) {
                    sums[at + j] += biasCopy[j];
                }
            }
            resultFloats.put(result.start() / Float.BYTES + at + start, sums, at + start, end - start);
        }
    }

    /**
     * Sums of input rows {@code [r, r + 4)} (fewer at the end: the last row stands in for the missing
     * ones, its sums kept once) over columns {@code [j, j + BLOCK)}, in sixteen registers: each loaded
     * piece of the matrix serves four rows. Streamed as for one row (their sums read and written per
     * matrix row), eight rows took 11–17, 57–68 and 45–49 µs on {@code [256, 256]}, {@code [256, 1024]}
     * and {@code [1024, 256]} against 9.4–10, 42–47 and 39–43 here (BENCHMARKS.md, change 32).
     */
    private void fourRowsBlock(int r, int j) {
        ByteBuffer bytes = matrix.bytes();
        float[] x = inputCopy;
        int rowBytes = columns * Float.BYTES;
        int x0 = r * rows;
        int x1 = Math.min(r + 1, count - 1) * rows;
        int x2 = Math.min(r + 2, count - 1) * rows;
        int x3 = Math.min(r + 3, count - 1) * rows;
        FloatVector a00 = FloatVector.zero(SPECIES), a01 = a00, a02 = a00, a03 = a00;
        FloatVector a10 = a00, a11 = a00, a12 = a00, a13 = a00;
        FloatVector a20 = a00, a21 = a00, a22 = a00, a23 = a00;
        FloatVector a30 = a00, a31 = a00, a32 = a00, a33 = a00;
        int at = matrix.at(j);
        for (int i = 0; i < rows; i++, at += rowBytes) {
            FloatVector w0 = FloatVector.fromByteBuffer(SPECIES, bytes, at, FloatRegion.ORDER);
            FloatVector w1 = FloatVector.fromByteBuffer(SPECIES, bytes, at + VECTOR_BYTES, FloatRegion.ORDER);
            FloatVector w2 = FloatVector.fromByteBuffer(SPECIES, bytes, at + 2 * VECTOR_BYTES, FloatRegion.ORDER);
            FloatVector w3 = FloatVector.fromByteBuffer(SPECIES, bytes, at + 3 * VECTOR_BYTES, FloatRegion.ORDER);
            FloatVector s = FloatVector.broadcast(SPECIES, x[x0 + i]);
            a00 = w0.fma(s, a00);
            a01 = w1.fma(s, a01);
            a02 = w2.fma(s, a02);
            a03 = w3.fma(s, a03);
            s = FloatVector.broadcast(SPECIES, x[x1 + i]);
            a10 = w0.fma(s, a10);
            a11 = w1.fma(s, a11);
            a12 = w2.fma(s, a12);
            a13 = w3.fma(s, a13);
            s = FloatVector.broadcast(SPECIES, x[x2 + i]);
            a20 = w0.fma(s, a20);
            a21 = w1.fma(s, a21);
            a22 = w2.fma(s, a22);
            a23 = w3.fma(s, a23);
            s = FloatVector.broadcast(SPECIES, x[x3 + i]);
            a30 = w0.fma(s, a30);
            a31 = w1.fma(s, a31);
            a32 = w2.fma(s, a32);
            a33 = w3.fma(s, a33);
        }
        storeBlock(r, j, a00, a01, a02, a03);
        if (r + 1 < count) {
            storeBlock(r + 1, j, a10, a11, a12, a13);
        }
        if (r + 2 < count) {
            storeBlock(r + 2, j, a20, a21, a22, a23);
        }
        if (r + 3 < count) {
            storeBlock(r + 3, j, a30, a31, a32, a33);
        }
    }

    private void storeBlock(int r, int j, FloatVector v0, FloatVector v1, FloatVector v2, FloatVector v3) {
        int at = r * columns + j;
        v0.intoArray(sums, at);
        v1.intoArray(sums, at + LANES);
        v2.intoArray(sums, at + 2 * LANES);
        v3.intoArray(sums, at + 3 * LANES);
    }

    /** Adds matrix rows {@code [i, i + 8)} times each input row's elements there to the sums of columns {@code [start, end)}. */
    private void eightRows(int i, int start, int end) {
        ByteBuffer bytes = matrix.bytes();
        float[] x = inputCopy;
        float[] y = sums;
        int rowBytes = columns * Float.BYTES;
        int vectorEnd = start + (end - start) / LANES * LANES;
        int at = matrix.at(i * columns + start);
        if (count == 1) {
            // One input row (a decoding step): its eight elements stay in registers across the columns;
            // broadcast per column as below, the step's 24 products took 268–305 µs against 218–243 (change 32).
            FloatVector x0 = FloatVector.broadcast(SPECIES, x[i]);
            FloatVector x1 = FloatVector.broadcast(SPECIES, x[i + 1]);
            FloatVector x2 = FloatVector.broadcast(SPECIES, x[i + 2]);
            FloatVector x3 = FloatVector.broadcast(SPECIES, x[i + 3]);
            FloatVector x4 = FloatVector.broadcast(SPECIES, x[i + 4]);
            FloatVector x5 = FloatVector.broadcast(SPECIES, x[i + 5]);
            FloatVector x6 = FloatVector.broadcast(SPECIES, x[i + 6]);
            FloatVector x7 = FloatVector.broadcast(SPECIES, x[i + 7]);
            for (int j = start; j < vectorEnd; j += LANES, at += VECTOR_BYTES) {
                FloatVector a = FloatVector.fromArray(SPECIES, y, j);
                a = FloatVector.fromByteBuffer(SPECIES, bytes, at, FloatRegion.ORDER).fma(x0, a);
                a = FloatVector.fromByteBuffer(SPECIES, bytes, at + rowBytes, FloatRegion.ORDER).fma(x1, a);
                a = FloatVector.fromByteBuffer(SPECIES, bytes, at + 2 * rowBytes, FloatRegion.ORDER).fma(x2, a);
                a = FloatVector.fromByteBuffer(SPECIES, bytes, at + 3 * rowBytes, FloatRegion.ORDER).fma(x3, a);
                a = FloatVector.fromByteBuffer(SPECIES, bytes, at + 4 * rowBytes, FloatRegion.ORDER).fma(x4, a);
                a = FloatVector.fromByteBuffer(SPECIES, bytes, at + 5 * rowBytes, FloatRegion.ORDER).fma(x5, a);
                a = FloatVector.fromByteBuffer(SPECIES, bytes, at + 6 * rowBytes, FloatRegion.ORDER).fma(x6, a);
                a = FloatVector.fromByteBuffer(SPECIES, bytes, at + 7 * rowBytes, FloatRegion.ORDER).fma(x7, a);
                a.intoArray(y, j);
            }
        }
        for (int j = start; count > 1 && j < vectorEnd; j += LANES, at += VECTOR_BYTES) {
            FloatVector w0 = FloatVector.fromByteBuffer(SPECIES, bytes, at, FloatRegion.ORDER);
            FloatVector w1 = FloatVector.fromByteBuffer(SPECIES, bytes, at + rowBytes, FloatRegion.ORDER);
            FloatVector w2 = FloatVector.fromByteBuffer(SPECIES, bytes, at + 2 * rowBytes, FloatRegion.ORDER);
            FloatVector w3 = FloatVector.fromByteBuffer(SPECIES, bytes, at + 3 * rowBytes, FloatRegion.ORDER);
            FloatVector w4 = FloatVector.fromByteBuffer(SPECIES, bytes, at + 4 * rowBytes, FloatRegion.ORDER);
            FloatVector w5 = FloatVector.fromByteBuffer(SPECIES, bytes, at + 5 * rowBytes, FloatRegion.ORDER);
            FloatVector w6 = FloatVector.fromByteBuffer(SPECIES, bytes, at + 6 * rowBytes, FloatRegion.ORDER);
            FloatVector w7 = FloatVector.fromByteBuffer(SPECIES, bytes, at + 7 * rowBytes, FloatRegion.ORDER);
            for (int r = 0, xr = i, yr = j; r < count; r++, xr += rows, yr += columns) {
                FloatVector a = FloatVector.fromArray(SPECIES, y, yr);
                a = w0.fma(FloatVector.broadcast(SPECIES, x[xr]), a);
                a = w1.fma(FloatVector.broadcast(SPECIES, x[xr + 1]), a);
                a = w2.fma(FloatVector.broadcast(SPECIES, x[xr + 2]), a);
                a = w3.fma(FloatVector.broadcast(SPECIES, x[xr + 3]), a);
                a = w4.fma(FloatVector.broadcast(SPECIES, x[xr + 4]), a);
                a = w5.fma(FloatVector.broadcast(SPECIES, x[xr + 5]), a);
                a = w6.fma(FloatVector.broadcast(SPECIES, x[xr + 6]), a);
                a = w7.fma(FloatVector.broadcast(SPECIES, x[xr + 7]), a);
                a.intoArray(y, yr);
            }
        }
        for (int j = vectorEnd; j < end; j++) {
            for (int r = 0; r < count; r++) {
                float sum = y[r * columns + j];
                for (int q = 0; q < 8; q++) {
                    sum = Math.fma(x[r * rows + i + q], matrix.get((i + q) * columns + j), sum);
                }
                y[r * columns + j] = sum;
            }
        }
    }

    /** {@link #eightRows} for the one matrix row {@code i}. */
    private void oneRow(int i, int start, int end) {
        ByteBuffer bytes = matrix.bytes();
        float[] x = inputCopy;
        float[] y = sums;
        int vectorEnd = start + (end - start) / LANES * LANES;
        int at = matrix.at(i * columns + start);
        for (int j = start; j < vectorEnd; j += LANES, at += VECTOR_BYTES) {
            FloatVector w = FloatVector.fromByteBuffer(SPECIES, bytes, at, FloatRegion.ORDER);
            for (int r = 0, yr = j; r < count; r++, yr += columns) {
                w.fma(FloatVector.broadcast(SPECIES, x[r * rows + i]), FloatVector.fromArray(SPECIES, y, yr)).intoArray(y, yr);
            }
        }
        for (int j = vectorEnd; j < end; j++) {
            for (int r = 0; r < count; r++) {
                y[r * columns + j] = Math.fma(x[r * rows + i], matrix.get(i * columns + j), y[r * columns + j]);
            }
        }
    }

    /** {@code result[r] = matrix[r, :] · input} for the rows {@code [from, to)}. */
    private void rowDots(int from, int to) {
        ByteBuffer bytes = matrix.bytes();
        float[] x = inputCopy;
        for (int r = from; r < to; r++) {
            int row = matrix.at(r * columns);
            FloatVector a0 = FloatVector.zero(SPECIES);
            FloatVector a1 = FloatVector.zero(SPECIES);
            int k = 0;
            for (; k + 2 * LANES <= columns; k += 2 * LANES) {
                int at = row + k * Float.BYTES;
                a0 = FloatVector.fromByteBuffer(SPECIES, bytes, at, FloatRegion.ORDER).fma(FloatVector.fromArray(SPECIES, x, k), a0);
                a1 = FloatVector.fromByteBuffer(SPECIES, bytes, at + VECTOR_BYTES, FloatRegion.ORDER)
                        .fma(FloatVector.fromArray(SPECIES, x, k + LANES), a1);
            }
            for (; k + LANES <= columns; k += LANES) {
                a0 = FloatVector.fromByteBuffer(SPECIES, bytes, row + k * Float.BYTES, FloatRegion.ORDER).fma(FloatVector.fromArray(SPECIES, x, k), a0);
            }
            float sum = a0.add(a1).reduceLanes(VectorOperators.ADD);
            for (; k < columns; k++) {
                sum = Math.fma(matrix.get(r * columns + k), x[k], sum);
            }
            result.put(r, sum);
        }
    }
}
