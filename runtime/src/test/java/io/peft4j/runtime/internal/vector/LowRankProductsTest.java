package io.peft4j.runtime.internal.vector;

import static io.peft4j.runtime.internal.vector.KernelAssertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.List;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.blas.params.MMulTranspose;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;
import org.nd4j.linalg.api.ops.impl.reduce.MmulBp;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Matrix products with a short side ({@code matmul} and {@code matmul_bp} of LoRA's factors) compute
 * what BLAS computes, to within fp32 rounding of sums taken in another order: LoRA's four products
 * and their gradients at a rank that leaves a vector tail, every transposition, the gradient pruned
 * to one factor, strided operands, a product large enough to run on several threads, with bits that
 * do not depend on the threads; and products that BLAS should keep are refused.
 */
class LowRankProductsTest {
    private static final VectorKernels KERNELS = new VectorKernels();
    private static final boolean[] BOTH = {false, true};

    @Test
    void loraForwardAndGradientProducts() {
        int tokens = 203;
        int in = 45;
        int out = 37;
        int rank = 5;
        INDArray x = Nd4j.randn(DataType.FLOAT, tokens, in);
        INDArray a = Nd4j.randn(DataType.FLOAT, in, rank);
        INDArray b = Nd4j.randn(DataType.FLOAT, rank, out);
        INDArray z = product(x, a, false, false, false, "x · A");
        product(z, b, false, false, false, "z · B");
        gradient(z, b, Nd4j.randn(DataType.FLOAT, tokens, out), false, false, false, "matmul_bp(z, B, dY)");
        gradient(x, a, Nd4j.randn(DataType.FLOAT, tokens, rank), false, false, false, "matmul_bp(x, A, dz)");
        // MatMulGradientPruner's form where only dA is used: xᵀ · dz
        product(x, Nd4j.randn(DataType.FLOAT, tokens, rank), true, false, false, "xᵀ · dz");
    }

    @Test
    void everyTransposition() {
        int m = 71;
        int k = 9;
        int n = 23;
        int sumsCovered = 0;
        for (boolean tx : BOTH) {
            for (boolean ty : BOTH) {
                for (boolean tz : BOTH) {
                    String what = " transposed " + tx + ", " + ty + ", result " + tz;
                    INDArray x = Nd4j.randn(DataType.FLOAT, tx ? k : m, tx ? m : k);
                    INDArray y = Nd4j.randn(DataType.FLOAT, ty ? n : k, ty ? k : n);
                    if (!tz) {
                        product(x, y, tx, ty, false, "matmul" + what);
                    }
                    INDArray g = Nd4j.randn(DataType.FLOAT, tz ? n : m, tz ? m : n);
                    // with x transposed, dx's longest side is its columns: BLAS's
                    if (!tz && !tx) {
                        gradient(x, y, g, tx, ty, false, "matmul_bp" + what);
                    }
                    // a long middle side: the weight gradient's form
                    INDArray wx = Nd4j.randn(DataType.FLOAT, tx ? 151 : 6, tx ? 6 : 151);
                    INDArray wy = Nd4j.randn(DataType.FLOAT, ty ? 40 : 151, ty ? 151 : 40);
                    INDArray expected = Nd4j.create(DataType.FLOAT, tz ? 40 : 6, tz ? 6 : 40);
                    Mmul op = new Mmul(wx, wy, expected, 1.0, 0.0, transpose(tx, ty, tz));
                    INDArray actual = expected.ulike();
                    Runnable kernel = bind(op, List.of(wx, wy), actual);
                    if (kernel != null) {
                        sumsCovered++;
                        kernel.run();
                        Nd4j.exec(op);
                        assertClose(expected, actual, 2e-5, "sum over 151" + what);
                    }
                }
            }
        }
        // the wide operand must be contiguous along the result's long side: y not transposed
        assertEquals(4, sumsCovered, "sums over the long side bound");
    }

    @Test
    void stridedOperandsAndThreadsDoNotChangeTheBits() {
        INDArray wide = Nd4j.randn(DataType.FLOAT, 4096, 2 * 96);
        INDArray everyOther = wide.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 2, 2 * 96));
        INDArray a = Nd4j.randn(DataType.FLOAT, 96, 8);
        INDArray z = product(everyOther, a, false, false, false, "strided rows · A");
        INDArray contiguous = everyOther.dup();
        INDArray single = Nd4j.create(DataType.FLOAT, 4096, 8);
        for (int row = 0; row < 4096; row += 1000) {
            int rows = Math.min(1000, 4096 - row);
            INDArray part = Nd4j.create(DataType.FLOAT, rows, 8);
            INDArray slice = contiguous.get(NDArrayIndex.interval(row, row + rows), NDArrayIndex.all()).dup();
            bind(new Mmul(slice, a, part, 1.0, 0.0, MMulTranspose.allFalse()), List.of(slice, a), part).run();
            single.get(NDArrayIndex.interval(row, row + rows), NDArrayIndex.all()).assign(part);
        }
        assertArrayEquals(single.data().asFloat(), z.data().asFloat(), "rows computed apart, contiguous, give the strided product's bits");

        INDArray dy = Nd4j.randn(DataType.FLOAT, 4096, 384);
        INDArray db = product(z, dy, true, false, false, "zᵀ · dY over 4,096 tokens");
        INDArray narrowColumns = Nd4j.create(DataType.FLOAT, 8, 16);
        INDArray dySlice = dy.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 16));
        bind(new Mmul(z, dySlice, narrowColumns, 1.0, 0.0, transpose(true, false, false)), List.of(z, dySlice), narrowColumns).run();
        assertArrayEquals(narrowColumns.data().asFloat(), db.get(NDArrayIndex.all(), NDArrayIndex.interval(0, 16)).dup().data().asFloat(),
                "columns summed on one thread give the same bits as on several");
    }

    @Test
    void productsBlasKeepsAreRefused() {
        INDArray square = Nd4j.rand(DataType.FLOAT, 64, 64);
        assertNull(bind(new Mmul(square, square, Nd4j.create(DataType.FLOAT, 64, 64), 1.0, 0.0, MMulTranspose.allFalse()),
                List.of(square, square), Nd4j.create(DataType.FLOAT, 64, 64)), "no short side");
        INDArray rows = Nd4j.rand(DataType.FLOAT, 16, 384);
        INDArray head = Nd4j.rand(DataType.FLOAT, 384, 2);
        assertNull(bind(new Mmul(rows, head, Nd4j.create(DataType.FLOAT, 16, 2), 1.0, 0.0, MMulTranspose.allFalse()),
                List.of(rows, head), Nd4j.create(DataType.FLOAT, 16, 2)), "the longest side neither the rows nor the sum");
        INDArray x = Nd4j.rand(DataType.FLOAT, 256, 8);
        INDArray y = Nd4j.rand(DataType.FLOAT, 8, 64);
        assertNull(bind(new Mmul(x, y, Nd4j.create(DataType.FLOAT, 256, 64), 2.0, 0.0, MMulTranspose.allFalse()),
                List.of(x, y), Nd4j.create(DataType.FLOAT, 256, 64)), "a scaled product");
        INDArray strided = Nd4j.create(DataType.FLOAT, 64, 256).transpose();
        assertNull(bind(new Mmul(x, y, strided, 1.0, 0.0, MMulTranspose.allFalse()), List.of(x, y), strided),
                "an output that is not contiguous");
    }

    /** Binds and runs {@code op(x) · op(y)}, checks it against BLAS, returns the kernel's result. */
    private static INDArray product(INDArray x, INDArray y, boolean tx, boolean ty, boolean tz, String what) {
        long m = tx ? x.size(1) : x.size(0);
        long n = ty ? y.size(0) : y.size(1);
        INDArray expected = tz ? Nd4j.create(DataType.FLOAT, n, m) : Nd4j.create(DataType.FLOAT, m, n);
        Mmul op = new Mmul(x, y, expected, 1.0, 0.0, transpose(tx, ty, tz));
        INDArray actual = expected.ulike();
        Runnable kernel = bind(op, List.of(x, y), actual);
        assertNotNull(kernel, what + " not covered");
        kernel.run();
        Nd4j.exec(op);
        assertClose(expected, actual, 2e-5, what);
        return actual;
    }

    private static void gradient(INDArray x, INDArray y, INDArray g, boolean tx, boolean ty, boolean tz, String what) {
        INDArray dx = x.ulike();
        INDArray dy = y.ulike();
        MmulBp op = new MmulBp(x, y, g, dx, dy, transpose(tx, ty, tz));
        INDArray actualDx = x.ulike();
        INDArray actualDy = y.ulike();
        Runnable kernel = KERNELS.kernelFor((DifferentialFunction) op, List.of(x, y, g), new INDArray[] {actualDx, actualDy}, op.iArgs(),
                op.tArgs(), op.bArgs());
        assertNotNull(kernel, what + " not covered");
        kernel.run();
        Nd4j.exec((CustomOp) op);
        assertClose(dx, actualDx, 2e-5, what + ": dx");
        assertClose(dy, actualDy, 2e-5, what + ": dy");
    }

    private static MMulTranspose transpose(boolean x, boolean y, boolean z) {
        return MMulTranspose.builder().transposeA(x).transposeB(y).transposeResult(z).build();
    }

    private static Runnable bind(CustomOp op, List<INDArray> inputs, INDArray output) {
        return KERNELS.kernelFor((DifferentialFunction) op, inputs, new INDArray[] {output}, op.iArgs(), op.tArgs(), op.bArgs());
    }
}
