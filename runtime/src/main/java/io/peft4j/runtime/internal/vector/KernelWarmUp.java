package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.ExactGelu;
import io.peft4j.runtime.internal.ReplayKernels;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;

/**
 * Runs every kernel loop on small buffers until the JIT has compiled it, on a daemon thread, while
 * the trainer's first steps run in SameDiff.
 *
 * <p>The Vector API is fast only in code that C2 has compiled; interpreted or compiled by C1, each
 * vector operation allocates, and a loop runs 10–100× slower than libnd4j's. A kernel that a model
 * calls rarely (a negation of a LayerNorm's statistics, twice a step) would stay that slow for
 * hundreds of steps, and every kernel would be slow in the first replayed steps; measured inside the
 * sample transformer's steps, a negation over 1,024 elements took 61 µs against libnd4j's 29.
 */
final class KernelWarmUp {
    /**
     * Kernels over fewer elements run scalar loops. A vector loop that runs a few iterations per call
     * in a rarely called op may never be compiled by C2, or be thrown back to the interpreter when
     * the JIT deoptimises it, and there it took 7–24× libnd4j's time on {@code [16, 128, 1]}
     * (an addition of LayerNorm's epsilon: 230 µs against 34); scalar Java is slow only before C1.
     */
    static final int VECTOR_FROM = 4096;
    /**
     * {@link #VECTOR_FROM} of the functions built on the exponential ({@code exp}, {@code sigmoid}, the
     * GELUs, {@code erf}): their scalar loop calls {@code Math.exp} per element, about ten times the
     * vector loop's time (ND4J's {@code gelu} on a decoding step's {@code [1, 1024]}: 5.1 µs against
     * 0.6; BENCHMARKS.md, change 32), which outweighs the risk above for arrays of a few hundred.
     */
    static final int TRANSCENDENTAL_VECTOR_FROM = 256;
    private static final int ELEMENTS = 4 * VECTOR_FROM;
    private static final int ROUNDS = 400;

    private KernelWarmUp() {
    }

    /** Starts the warm-up; returns at once. */
    static void start() {
        Thread thread = new Thread(KernelWarmUp::run, "peft4j-kernel-warm-up");
        thread.setDaemon(true);
        thread.setPriority(Thread.MIN_PRIORITY);
        thread.start();
    }

    static void run() {
        List<Runnable> kernels = kernels();
        for (int round = 0; round < ROUNDS; round++) {
            for (Runnable kernel : kernels) {
                kernel.run();
            }
        }
    }

    private static List<Runnable> kernels() {
        FloatRegion x = region(ELEMENTS, 0.5f);
        FloatRegion positive = region(ELEMENTS, 1.5f);
        FloatRegion y = region(ELEMENTS, 0f);
        FloatRegion z = region(ELEMENTS, 0f);
        FloatRegion row = region(64, 0.25f);
        FloatRegion perRow = region(ELEMENTS / 64, 2f);
        FloatRegion small = region(VECTOR_FROM / 4, 0.5f);
        FloatRegion smallOut = region(VECTOR_FROM / 4, 0f);
        List<Runnable> kernels = new ArrayList<>();
        for (UnaryKernel.Function function : UnaryKernel.Function.values()) {
            kernels.add(new UnaryKernel(function, function == UnaryKernel.Function.SQRT ? positive : x, y));
            kernels.add(new UnaryKernel(function, small, smallOut));
        }
        for (BinaryKernel.Operation operation : BinaryKernel.Operation.values()) {
            for (boolean reversed : new boolean[] {false, true}) {
                kernels.add(new BinaryKernel(operation, reversed, x, positive, y, new BinaryKernel.Layout(1, 1, ELEMENTS)));
                kernels.add(new BinaryKernel(operation, reversed, x, row, y, new BinaryKernel.Layout(1, ELEMENTS / 64, 64)));
                kernels.add(new BinaryKernel(operation, reversed, x, perRow, y, new BinaryKernel.Layout(ELEMENTS / 64, 64, 1)));
                kernels.add(new BinaryKernel(operation, reversed, small, small, smallOut, new BinaryKernel.Layout(1, 1, small.length())));
            }
        }
        kernels.add(new SoftmaxKernel(x, y, 64));
        kernels.add(new RowReductionKernel(x, perRow(), 64, true));
        kernels.add(new RowReductionKernel(x, perRow(), 64, false));
        kernels.add(new RowBroadcastKernel(perRow, y, 64, 64f));
        kernels.add(new RowBroadcastKernel(perRow, y, 64, 1f));
        kernels.add(new ProductGradientKernel(x, positive, x, y, z));
        kernels.add(new PermuteKernel(x, new long[] {4, 16, 64}, new int[] {1, 0, 2}, y));
        ExactGelu.Scalars scalars = new ExactGelu.Scalars(0.5f, (float) Math.sqrt(2.0), true, 1f);
        Map<ExactGelu.Part, FloatRegion> parts = new EnumMap<>(ExactGelu.Part.class);
        for (ExactGelu.Part part : ExactGelu.Part.values()) {
            parts.put(part, region(ELEMENTS, 0f));
        }
        kernels.add(new ExactGeluKernel(x, scalars, parts));
        kernels.add(new ExactGeluKernel(x, scalars, Map.of(ExactGelu.Part.OUTPUT, y)));
        kernels.add(new ExactGeluGradientKernel(x, positive, y, z, positive, region(ELEMENTS, 0f), scalars));
        // An eager decoding step's kernels, at a small model's sizes.
        FloatRegion matrix = region(256 * 128, 0.25f);
        FloatRegion rowIn = region(256, 0.5f);
        FloatRegion rowOut = region(256, 0f);
        kernels.add(new RowProductKernel(matrix, 256, 128, rowIn, region(128, 0f), RowProductKernel.Layout.TRANSPOSED));
        kernels.add(new RowProductKernel(matrix, 128, 256, rowIn, region(128, 0f), RowProductKernel.Layout.PLAIN));
        // A prompt's few rows with a bias, 136 columns (a tail after the 64-column blocks), so that the
        // JIT has seen both forms of the product before the first prompt.
        kernels.add(new RowProductKernel(region(256 * 136, 0.25f), 256, 136, 5, region(5 * 256, 0.5f), region(136, 0f), region(5 * 136, 0f),
                RowProductKernel.Layout.TRANSPOSED));
        kernels.add(new LayerNormKernel(x, region(64, 1f), region(64, 0f), y));
        FloatRegion cache = region(32 * 256, 0.5f);
        ReplayKernels.CacheKernel attention = new SingleQueryAttentionKernel(rowIn, StridedRegion.byHead(cache, 32, 4),
                StridedRegion.byHead(cache, 32, 4), rowOut, true);
        kernels.add(() -> attention.run(32));
        ReplayKernels.CacheKernel writer = new CacheWriterKernel(rowOut, region(32 * 256, 0f), 256);
        kernels.add(() -> writer.run(7));
        // Attention's batched products: four [36, 40] · [40, 37] products with row and column tails,
        // each operand read along its rows (PV) and across them (the scores' Kᵀ, a gradient's Qᵀ).
        FloatRegion heads = region(4 * 40 * 40, 0.5f);
        int[] offsets = {0, 1600, 3200, 4800};
        BatchedMatrix rowsLeft = new BatchedMatrix(heads.bytes(), 0, offsets, 36, 40, 40, 1);
        BatchedMatrix columnsLeft = new BatchedMatrix(heads.bytes(), 0, offsets, 36, 40, 1, 40);
        BatchedMatrix rowsRight = new BatchedMatrix(heads.bytes(), 0, offsets, 40, 37, 40, 1);
        BatchedMatrix columnsRight = new BatchedMatrix(heads.bytes(), 0, offsets, 40, 37, 1, 40);
        kernels.add(new BatchedProductKernel(rowsLeft, rowsRight, region(4 * 36 * 37, 0f)));
        kernels.add(new BatchedProductKernel(columnsLeft, columnsRight, region(4 * 36 * 37, 0f)));
        // Fused attention and its gradient over the same heads: 37 keys (a tail), a mask broadcast over rows.
        BatchedMatrix values = new BatchedMatrix(heads.bytes(), 0, offsets, 37, 40, 40, 1);
        BatchedMatrix mask = new BatchedMatrix(region(37, 0f).bytes(), 0, new int[offsets.length], 36, 37, 0, 1);
        kernels.add(new AttentionKernel(rowsLeft, columnsRight, values, mask, AttentionKernel.Scaling.DIVIDE, 6.3245554f,
                new AttentionKernel.Targets(null, null, null, region(4 * 36 * 37, 0f), region(4 * 36 * 40, 0f))));
        FloatRegion probabilities = region(4 * 36 * 37, 0.02f);
        kernels.add(new AttentionGradientKernel(rowsLeft, values, values, new BatchedMatrix(probabilities.bytes(), 0, new int[] {0, 1332, 2664, 3996},
                36, 37, 37, 1), rowsLeft, AttentionKernel.Scaling.DIVIDE, 6.3245554f, new AttentionGradientKernel.Gradients(
                region(4 * 36 * 40, 0f), region(4 * 37 * 40, 0f), region(4 * 37 * 40, 0f))));
        // LoRA's products at rank 5 over 75 rows: rows times [40, 5] and [5, 37] (tails of rows and
        // columns), and sums over the rows into [5, 37] and, transposed, [40, 5].
        FloatRegion tall = region(75 * 40, 0.5f);
        BatchedMatrix tallRows = new BatchedMatrix(tall.bytes(), 0, new int[1], 75, 40, 40, 1);
        BatchedMatrix narrowRows = new BatchedMatrix(tall.bytes(), 0, new int[1], 75, 5, 40, 1);
        kernels.add(new LowRankProductKernel(tallRows, new BatchedMatrix(heads.bytes(), 0, new int[1], 40, 5, 40, 1), region(75 * 5, 0f),
                null));
        kernels.add(new LowRankProductKernel(narrowRows, new BatchedMatrix(heads.bytes(), 0, new int[1], 5, 37, 40, 1), region(75 * 37, 0f),
                region(75 * 37, 0.5f)));
        kernels.add(new OuterProductSumKernel(narrowRows.transposed(), new BatchedMatrix(tall.bytes(), 0, new int[1], 75, 37, 40, 1),
                region(5 * 37, 0f)));
        kernels.add(new OuterProductSumKernel(tallRows.transposed(), narrowRows, region(40 * 5, 0f)));
        // Adam's step, with a tail after the last full vector.
        int parameters = ELEMENTS + 3;
        AdamKernel adam = new AdamKernel(region(parameters, 0.5f), region(parameters, 0.01f), region(parameters, 0f), region(parameters, 0f));
        kernels.add(() -> {
            adam.update(1e-3, 0.9, 0.999, 1e-8, 0);
            adam.step();
        });
        return kernels;
    }

    private static FloatRegion perRow() {
        return region(ELEMENTS / 64, 0f);
    }

    private static FloatRegion region(int length, float value) {
        ByteBuffer bytes = ByteBuffer.allocateDirect(length * Float.BYTES).order(FloatRegion.ORDER);
        for (int i = 0; i < length; i++) {
            bytes.putFloat(i * Float.BYTES, value + i % 7 * 0.01f);
        }
        return new FloatRegion(bytes, 0, length);
    }
}
