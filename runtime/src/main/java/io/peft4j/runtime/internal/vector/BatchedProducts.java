package io.peft4j.runtime.internal.vector;

import java.util.Arrays;
import java.util.List;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Binds {@code matmul} and {@code matmul_bp} of fp32 arrays to peft4j's product kernels: arrays of
 * rank 3 or more with equal batch axes (attention's products) to {@link BatchedProductKernel}s, and
 * matrices where one side of the product is at most {@link #LOW_RANK} long (LoRA's factors and their
 * gradients) to {@link LowRankProductKernel} or {@link OuterProductSumKernel}. Integer arguments are
 * the transpositions of the first operand, the second and the result; scaling arguments, if any,
 * must be {@code (1, 0)}. Each returns {@code null} for any other form, which then runs in libnd4j
 * (other matrix products in BLAS).
 *
 * <p>Shapes: {@code matmul(x, y)} with {@code x [..., m, k]} and {@code y [..., k, n]} (each
 * {@code [..., k, m]} or {@code [..., n, k]} when transposed) gives {@code z [..., m, n]}, or
 * {@code [..., n, m]} when the result is transposed. {@code matmul_bp(x, y, g)}, {@code g} shaped as
 * {@code z}, gives {@code dx} and {@code dy} shaped as {@code x} and {@code y}.
 */
final class BatchedProducts {
    /**
     * The longest short side of a matrix product that runs here rather than in BLAS: LoRA's usual
     * ranks. At rank 32, OpenBLAS was faster on MiniLM's shapes (BENCHMARKS.md, change 29).
     */
    static final int LOW_RANK = 16;

    private BatchedProducts() {
    }

    /** A kernel for op {@code name} with these arrays and arguments, or {@code null}. */
    static Runnable kernelFor(String name, List<INDArray> inputs, INDArray[] outputs, long[] iArgs, double[] tArgs, boolean[] bArgs) {
        boolean plainScale = tArgs.length == 0 || (tArgs.length == 2 && tArgs[0] == 1.0 && tArgs[1] == 0.0);
        if (!plainScale || bArgs.length > 0 || iArgs.length > 3 || inputs.size() < 2 || inputs.get(0).rank() < 2
                || !sameBatchAxes(inputs)) {
            return null;
        }
        boolean transposeX = flag(iArgs, 0);
        boolean transposeY = flag(iArgs, 1);
        boolean transposeZ = flag(iArgs, 2);
        if (name.equals("matmul") && inputs.size() == 2 && outputs.length == 1) {
            return product(inputs.get(0), transposeX, inputs.get(1), transposeY, transposeZ, outputs[0]);
        }
        if (name.equals("matmul_bp") && inputs.size() == 3 && outputs.length == 2) {
            return productGradient(inputs.get(0), transposeX, inputs.get(1), transposeY, inputs.get(2), transposeZ, outputs[0], outputs[1]);
        }
        return null;
    }

    /**
     * {@code sum = addend + op(x) · op(y)} for {@code matmul}, or {@code sum = addend + dx} and
     * {@code otherGradient = dy} for {@code matmul_bp} with {@code x} not transposed, where the product
     * (or {@code dx}) is a tall matrix times a small one ({@link LowRankProductKernel}); else {@code null}.
     */
    static Runnable productSum(String name, List<INDArray> inputs, long[] iArgs, double[] tArgs, INDArray addend, INDArray sum,
                               INDArray otherGradient) {
        boolean plainScale = tArgs.length == 0 || (tArgs.length == 2 && tArgs[0] == 1.0 && tArgs[1] == 0.0);
        FloatRegion addendRegion = FloatRegion.of(addend);
        FloatRegion sumRegion = FloatRegion.of(sum);
        if (!plainScale || iArgs.length > 3 || flag(iArgs, 2) || addendRegion == null || sumRegion == null
                || inputs.stream().anyMatch(input -> input.rank() != 2)) {
            return null;
        }
        boolean transposeX = flag(iArgs, 0);
        boolean transposeY = flag(iArgs, 1);
        BatchedMatrix xs = BatchedMatrix.of(inputs.get(0), transposeX);
        BatchedMatrix ys = BatchedMatrix.of(inputs.get(1), transposeY);
        if (xs == null || ys == null) {
            return null;
        }
        if (name.equals("matmul") && inputs.size() == 2 && otherGradient == null) {
            return tallTimesSmall(xs, ys, sumRegion, addendRegion);
        }
        if (!name.equals("matmul_bp") || inputs.size() != 3 || otherGradient == null || transposeX
                || !Arrays.equals(inputs.get(1).shape(), otherGradient.shape())) {
            return null;
        }
        BatchedMatrix g = BatchedMatrix.of(inputs.get(2), false);
        if (g == null) {
            return null;
        }
        return inTurn(tallTimesSmall(g, ys.transposed(), sumRegion, addendRegion), secondGradient(xs, transposeY, g, otherGradient,
                inputs.get(1)));
    }

    private static Runnable tallTimesSmall(BatchedMatrix left, BatchedMatrix right, FloatRegion sum, FloatRegion addend) {
        int m = left.rows();
        int k = left.columns();
        int n = right.columns();
        boolean covered = k == right.rows() && m >= k && m >= n && Math.min(k, n) <= LOW_RANK && (long) m * n == sum.length()
                && addend.length() == sum.length();
        return covered ? new LowRankProductKernel(left, right, sum, addend) : null;
    }

    /** {@code z = op(x) · op(y)}, or its transpose {@code op(y)ᵀ · op(x)ᵀ}. */
    private static Runnable product(INDArray x, boolean transposeX, INDArray y, boolean transposeY, boolean transposeZ, INDArray z) {
        BatchedMatrix left = BatchedMatrix.of(x, transposeX);
        BatchedMatrix right = BatchedMatrix.of(y, transposeY);
        if (left == null || right == null) {
            return null;
        }
        return transposeZ ? kernel(right.transposed(), left.transposed(), z, x) : kernel(left, right, z, x);
    }

    /**
     * With {@code X = op(x)}, {@code Y = op(y)} and {@code G} the gradient of {@code X · Y}:
     * {@code dX = G · Yᵀ} and {@code dY = Xᵀ · G}, each written transposed where its operand was used
     * transposed ({@code dx = Y · Gᵀ}, {@code dy = Gᵀ · X}).
     */
    private static Runnable productGradient(INDArray x, boolean transposeX, INDArray y, boolean transposeY, INDArray gradient,
                                            boolean transposeZ, INDArray dx, INDArray dy) {
        BatchedMatrix xs = BatchedMatrix.of(x, transposeX);
        BatchedMatrix ys = BatchedMatrix.of(y, transposeY);
        BatchedMatrix g = BatchedMatrix.of(gradient, transposeZ);
        if (xs == null || ys == null || g == null || !Arrays.equals(x.shape(), dx.shape()) || !Arrays.equals(y.shape(), dy.shape())) {
            return null;
        }
        Runnable first = transposeX ? kernel(ys, g.transposed(), dx, x) : kernel(g, ys.transposed(), dx, x);
        return inTurn(first, secondGradient(xs, transposeY, g, dy, y));
    }

    /** {@code dY = Xᵀ · G} into {@code dy}, written transposed ({@code Gᵀ · X}) where {@code y} was used transposed. */
    private static Runnable secondGradient(BatchedMatrix xs, boolean transposeY, BatchedMatrix g, INDArray dy, INDArray y) {
        return transposeY ? kernel(g.transposed(), xs, dy, y) : kernel(xs.transposed(), g, dy, y);
    }

    /** Both kernels, one after the other; {@code null} unless both are covered. */
    private static Runnable inTurn(Runnable first, Runnable second) {
        if (first == null || second == null) {
            return null;
        }
        return () -> {
            first.run();
            second.run();
        };
    }

    /** The kernel writing {@code left · right} into {@code result}, which must have {@code like}'s batch axes. */
    private static Runnable kernel(BatchedMatrix left, BatchedMatrix right, INDArray result, INDArray like) {
        FloatRegion out = FloatRegion.of(result);
        int rank = like.rank();
        if (out == null || result.rank() != rank || left.columns() != right.rows() || left.batch() != right.batch()
                || result.size(rank - 2) != left.rows() || result.size(rank - 1) != right.columns()) {
            return null;
        }
        for (int axis = 0; axis < rank - 2; axis++) {
            if (result.size(axis) != like.size(axis)) {
                return null;
            }
        }
        return rank == 2 ? lowRank(left, right, out) : new BatchedProductKernel(left, right, out);
    }

    /**
     * For {@code [m, k] · [k, n]}: rows times a small matrix when {@code m} is the longest side and
     * {@code k} or {@code n} short, a sum of outer products when {@code k} is the longest and {@code m}
     * or {@code n} short; else {@code null} (BLAS).
     */
    private static Runnable lowRank(BatchedMatrix left, BatchedMatrix right, FloatRegion out) {
        int m = left.rows();
        int k = left.columns();
        int n = right.columns();
        if (m >= k && m >= n && Math.min(k, n) <= LOW_RANK) {
            return new LowRankProductKernel(left, right, out, null);
        }
        if (k >= m && k >= n && Math.min(m, n) <= LOW_RANK && OuterProductSumKernel.covers(left, right)) {
            return new OuterProductSumKernel(left, right, out);
        }
        return null;
    }

    private static boolean sameBatchAxes(List<INDArray> inputs) {
        long[] first = inputs.get(0).shape();
        for (INDArray input : inputs) {
            long[] shape = input.shape();
            if (shape.length != first.length || !Arrays.equals(shape, 0, shape.length - 2, first, 0, first.length - 2)) {
                return false;
            }
        }
        return true;
    }

    private static boolean flag(long[] iArgs, int index) {
        return iArgs.length > index && iArgs[index] != 0;
    }
}
