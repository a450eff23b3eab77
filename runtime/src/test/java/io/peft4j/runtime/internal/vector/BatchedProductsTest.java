package io.peft4j.runtime.internal.vector;

import static io.peft4j.runtime.internal.vector.KernelAssertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.Arrays;
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
 * Batched products ({@code matmul} and {@code matmul_bp} of arrays of rank 3 or more) compute what
 * libnd4j computes, to within fp32 rounding of sums taken in another order: every combination of
 * transposed operands and result, sizes that leave row and column tails, heads split by a permuted
 * view as attention splits them, heads whose features are strided, and a product large enough to run on several threads. Other forms
 * are refused, so that libnd4j runs them.
 */
class BatchedProductsTest {
    private static final VectorKernels KERNELS = new VectorKernels();
    private static final boolean[] BOTH = {false, true};

    @Test
    void productsAreLibnd4jsForEveryTransposition() {
        int m = 37;
        int k = 19;
        int n = 21;
        for (boolean tx : BOTH) {
            for (boolean ty : BOTH) {
                for (boolean tz : BOTH) {
                    INDArray x = Nd4j.randn(DataType.FLOAT, 2, 3, tx ? k : m, tx ? m : k);
                    INDArray y = Nd4j.randn(DataType.FLOAT, 2, 3, ty ? n : k, ty ? k : n);
                    INDArray expected = Nd4j.create(DataType.FLOAT, 2, 3, tz ? n : m, tz ? m : n);
                    Mmul op = new Mmul(x, y, expected, 1.0, 0.0, transpose(tx, ty, tz));
                    INDArray actual = expected.ulike();
                    kernel(op, List.of(x, y), actual).run();
                    Nd4j.exec(op);
                    assertClose(expected, actual, 2e-5, "matmul transposed " + tx + ", " + ty + ", result " + tz);
                }
            }
        }
    }

    @Test
    void attentionsProductsOverPermutedHeads() {
        int batch = 3;
        int heads = 4;
        int sequence = 33;
        int size = 16;
        INDArray q = heads(Nd4j.randn(DataType.FLOAT, batch, sequence, heads * size), heads);
        INDArray key = heads(Nd4j.randn(DataType.FLOAT, batch, sequence, heads * size), heads);
        INDArray v = heads(Nd4j.randn(DataType.FLOAT, batch, sequence, heads * size), heads);
        INDArray scores = Nd4j.create(DataType.FLOAT, batch, heads, sequence, sequence);
        Mmul qk = new Mmul(q, key, scores, 1.0, 0.0, transpose(false, true, false));
        INDArray actualScores = scores.ulike();
        kernel(qk, List.of(q, key), actualScores).run();
        Nd4j.exec(qk);
        assertClose(scores, actualScores, 2e-5, "QKᵀ");

        INDArray context = Nd4j.create(DataType.FLOAT, batch, heads, sequence, size);
        Mmul pv = new Mmul(scores, v, context, 1.0, 0.0, MMulTranspose.allFalse());
        INDArray actualContext = context.ulike();
        kernel(pv, List.of(scores, v), actualContext).run();
        Nd4j.exec(pv);
        assertClose(context, actualContext, 2e-5, "PV");

        // every other feature: neither axis of a head contiguous, as the left operand or, transposed, the right
        INDArray everyOther = Nd4j.randn(DataType.FLOAT, batch, heads, sequence, 2 * size)
                .get(NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.all(), NDArrayIndex.interval(0, 2, 2 * size));
        INDArray stridedScores = Nd4j.create(DataType.FLOAT, batch, heads, sequence, sequence);
        Mmul strided = new Mmul(everyOther, everyOther, stridedScores, 1.0, 0.0, transpose(false, true, false));
        INDArray actualStrided = stridedScores.ulike();
        kernel(strided, List.of(everyOther, everyOther), actualStrided).run();
        Nd4j.exec(strided);
        assertClose(stridedScores, actualStrided, 2e-5, "heads with strided features");

        int large = 64;
        INDArray a = Nd4j.randn(DataType.FLOAT, 16, 4, large, large);
        INDArray b = Nd4j.randn(DataType.FLOAT, 16, 4, large, large);
        INDArray product = Nd4j.create(DataType.FLOAT, 16, 4, large, large);
        Mmul threaded = new Mmul(a, b, product, 1.0, 0.0, transpose(false, true, false));
        INDArray actual = product.ulike();
        kernel(threaded, List.of(a, b), actual).run();
        Nd4j.exec(threaded);
        assertClose(product, actual, 2e-5, "a product split over threads");
    }

    @Test
    void gradientsAreLibnd4jsForEveryTransposition() {
        int m = 13;
        int k = 35;
        int n = 18;
        for (boolean tx : BOTH) {
            for (boolean ty : BOTH) {
                for (boolean tz : BOTH) {
                    INDArray x = Nd4j.randn(DataType.FLOAT, 3, tx ? k : m, tx ? m : k);
                    INDArray y = Nd4j.randn(DataType.FLOAT, 3, ty ? n : k, ty ? k : n);
                    INDArray g = Nd4j.randn(DataType.FLOAT, 3, tz ? n : m, tz ? m : n);
                    INDArray dx = x.ulike();
                    INDArray dy = y.ulike();
                    MmulBp op = new MmulBp(x, y, g, dx, dy, transpose(tx, ty, tz));
                    INDArray actualDx = x.ulike();
                    INDArray actualDy = y.ulike();
                    Runnable kernel = KERNELS.kernelFor((DifferentialFunction) op, List.of(x, y, g), new INDArray[] {actualDx, actualDy},
                            op.iArgs(), op.tArgs(), op.bArgs());
                    String what = "matmul_bp transposed " + tx + ", " + ty + ", result " + tz;
                    assertNotNull(kernel, what + " not covered");
                    kernel.run();
                    Nd4j.exec((CustomOp) op);
                    assertClose(dx, actualDx, 2e-5, what + ": dx");
                    assertClose(dy, actualDy, 2e-5, what + ": dy");
                }
            }
        }
    }

    @Test
    void otherFormsAreLeftToLibnd4j() {
        INDArray matrices = Nd4j.rand(DataType.FLOAT, 64, 64);
        Mmul plain = new Mmul(matrices, matrices, Nd4j.create(DataType.FLOAT, 64, 64), 1.0, 0.0, MMulTranspose.allFalse());
        assertNull(bind(plain, List.of(matrices, matrices), Nd4j.create(DataType.FLOAT, 64, 64)), "rank 2 without a short side: BLAS's");
        INDArray x = Nd4j.rand(DataType.FLOAT, 2, 3, 4, 5);
        INDArray y = Nd4j.rand(DataType.FLOAT, 3, 2, 5, 4);
        Mmul otherBatch = new Mmul(x, y, Nd4j.create(DataType.FLOAT, 2, 3, 4, 4), 1.0, 0.0, MMulTranspose.allFalse());
        assertNull(bind(otherBatch, List.of(x, y), Nd4j.create(DataType.FLOAT, 2, 3, 4, 4)), "batch axes that differ");
        INDArray z = Nd4j.rand(DataType.FLOAT, 2, 3, 5, 4);
        Mmul scaled = new Mmul(x, z, Nd4j.create(DataType.FLOAT, 2, 3, 4, 4), 2.0, 0.0, MMulTranspose.allFalse());
        assertNull(bind(scaled, List.of(x, z), Nd4j.create(DataType.FLOAT, 2, 3, 4, 4)), "a scaled product");
        Mmul fp64 = new Mmul(x.castTo(DataType.DOUBLE), z.castTo(DataType.DOUBLE), Nd4j.create(DataType.DOUBLE, 2, 3, 4, 4), 1.0, 0.0,
                MMulTranspose.allFalse());
        assertNull(bind(fp64, List.of(x.castTo(DataType.DOUBLE), z.castTo(DataType.DOUBLE)), Nd4j.create(DataType.DOUBLE, 2, 3, 4, 4)),
                "fp64");
        INDArray stridedOutput = Nd4j.create(DataType.FLOAT, 2, 3, 4, 4).permute(0, 1, 3, 2);
        assertNull(bind(new Mmul(x, z, stridedOutput, 1.0, 0.0, MMulTranspose.allFalse()), List.of(x, z), stridedOutput),
                "an output that is not contiguous");
    }

    /** {@code [batch, sequence, heads · size] → [batch, heads, sequence, size]}, a view, as attention splits heads. */
    private static INDArray heads(INDArray rows, int heads) {
        return rows.reshape(rows.size(0), rows.size(1), heads, rows.size(2) / heads).permute(0, 2, 1, 3);
    }

    private static MMulTranspose transpose(boolean x, boolean y, boolean z) {
        return MMulTranspose.builder().transposeA(x).transposeB(y).transposeResult(z).build();
    }

    private static Runnable bind(CustomOp op, List<INDArray> inputs, INDArray output) {
        return KERNELS.kernelFor((DifferentialFunction) op, inputs, new INDArray[] {output}, op.iArgs(), op.tArgs(), op.bArgs());
    }

    private static Runnable kernel(CustomOp op, List<INDArray> inputs, INDArray output) {
        Runnable kernel = bind(op, inputs, output);
        assertNotNull(kernel, op.opName() + " on " + inputs.stream().map(in -> Arrays.toString(in.shape())).toList() + " not covered");
        return kernel;
    }
}
