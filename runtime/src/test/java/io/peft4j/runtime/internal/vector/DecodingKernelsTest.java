package io.peft4j.runtime.internal.vector;

import static io.peft4j.runtime.internal.vector.KernelAssertions.assertClose;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;

import java.util.Arrays;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.blas.params.MMulTranspose;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;
import org.nd4j.linalg.api.ops.impl.transforms.custom.DotProductAttention;
import org.nd4j.linalg.api.ops.impl.shape.Gather;
import org.nd4j.linalg.api.ops.impl.transforms.custom.LayerNorm;
import org.nd4j.linalg.api.ops.impl.transforms.custom.XwPlusB;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The kernels of an eager decoding step compute what libnd4j's ops compute, to within fp32 rounding
 * of sums taken in another order: a row times a matrix either way round (tails after the last full
 * vector, LoRA's rank-8 factors, a size split over threads), {@code layer_norm} (a constant row is its
 * bias, as libnd4j makes it), and one query's {@code dot_product_attention} over a cache seen through
 * a permuted view. Other forms of those ops are refused, so that libnd4j runs them.
 */
class DecodingKernelsTest {
    private static final VectorKernels KERNELS = new VectorKernels();

    @Test
    void rowProductsAreLibnd4jsGemv() {
        int[][] shapes = {{37, 70}, {70, 37}, {256, 8}, {8, 256}, {256, 1024}, {3, 5}, {2048, 2048}};
        for (int[] shape : shapes) {
            INDArray matrix = Nd4j.randn(DataType.FLOAT, shape[0], shape[1]);
            for (boolean transposed : new boolean[] {true, false}) {
                INDArray vector = Nd4j.randn(DataType.FLOAT, transposed ? shape[0] : shape[1]);
                long out = transposed ? shape[1] : shape[0];
                MMulTranspose transpose = transposed ? MMulTranspose.builder().transposeA(true).build() : MMulTranspose.allFalse();
                Mmul op = new Mmul(matrix, vector, Nd4j.create(DataType.FLOAT, out), 1.0, 0.0, transpose);
                INDArray actual = Nd4j.create(DataType.FLOAT, out);
                kernel(op, List.of(matrix, vector), actual).run();
                Nd4j.exec(op);
                assertClose(op.outputArguments().get(0), actual, 2e-5, "matrix " + Arrays.toString(shape) + (transposed ? " transposed" : ""));
            }
        }
    }

    @Test
    void aPromptsRowsTimesAWeightPlusBiasAreLibnd4jsAndEachRowsOwnProduct() {
        int[][] shapes = {{1, 37, 70}, {3, 70, 37}, {8, 256, 1024}, {16, 1024, 256}, {5, 9, 3}, {2, 2048, 2048}};
        for (int[] shape : shapes) {
            INDArray x = Nd4j.randn(DataType.FLOAT, shape[0], shape[1]);
            INDArray weight = Nd4j.randn(DataType.FLOAT, shape[1], shape[2]);
            INDArray bias = Nd4j.randn(DataType.FLOAT, shape[2]);
            XwPlusB op = new XwPlusB(new INDArray[] {x, weight, bias}, Nd4j.create(DataType.FLOAT, shape[0], shape[2]));
            INDArray actual = Nd4j.create(DataType.FLOAT, shape[0], shape[2]);
            kernel(op, List.of(x, weight, bias), actual).run();
            Nd4j.exec(op);
            assertClose(op.outputArguments().get(0), actual, 2e-5, "x " + Arrays.toString(shape));
            // A token fed alone gets the bits it gets as one of the prompt's rows.
            for (int r = 0; r < shape[0]; r++) {
                INDArray row = x.getRow(r).dup();
                INDArray alone = Nd4j.create(DataType.FLOAT, shape[2]);
                Mmul product = new Mmul(weight, row, alone, 1.0, 0.0, MMulTranspose.builder().transposeA(true).build());
                kernel(product, List.of(weight, row), alone).run();
                alone.addi(bias);
                assertArrayEquals(alone.toFloatVector(), actual.getRow(r).toFloatVector(), "row " + r + " of " + Arrays.toString(shape));
            }
        }
        INDArray seventeen = Nd4j.randn(DataType.FLOAT, 17, 8);
        INDArray weight = Nd4j.randn(DataType.FLOAT, 8, 4);
        INDArray bias = Nd4j.randn(DataType.FLOAT, 4);
        XwPlusB tooMany = new XwPlusB(new INDArray[] {seventeen, weight, bias}, Nd4j.create(DataType.FLOAT, 17, 4));
        assertNull(KERNELS.kernelFor(tooMany, List.of(seventeen, weight, bias), new INDArray[] {tooMany.outputArguments().get(0)}, tooMany.iArgs(),
                tooMany.tArgs(), tooMany.bArgs()), "17 rows are a matrix product for BLAS");
    }

    @Test
    void gatheredRowsAreTheTablesRowsAtTheCurrentIndices() {
        INDArray table = Nd4j.randn(DataType.FLOAT, 257, 40);
        INDArray indices = Nd4j.createFromArray(3, 256, 0, 3);
        INDArray actual = Nd4j.create(DataType.FLOAT, 4, 40);
        Gather op = new Gather(table, indices, 0);
        op.addOutputArgument(Nd4j.create(DataType.FLOAT, 4, 40));
        Runnable kernel = kernel(op, List.of(table, indices), actual);
        kernel.run();
        Nd4j.exec(op);
        assertEquals(op.outputArguments().get(0), actual);
        // a decoder writes the next token into the same index array: the bound kernel reads it
        indices.putScalar(1, 7);
        kernel.run();
        assertArrayEquals(table.getRow(7).toFloatVector(), actual.getRow(1).toFloatVector());
        indices.putScalar(2, 257);
        IndexOutOfBoundsException outside = assertThrows(IndexOutOfBoundsException.class, kernel::run);
        assertTrue(outside.getMessage().contains("index 257") && outside.getMessage().contains("257 rows"), outside.getMessage());
    }

    @Test
    void aBoundRowProductReadsItsArraysCurrentValuesOnEveryRun() {
        // A decoding session binds a kernel once and runs it every step, the vector being a row of a
        // larger array (an offset view) and the weight changing in place (merge, unmerge, training).
        INDArray matrix = Nd4j.randn(DataType.FLOAT, 96, 80);
        INDArray rows = Nd4j.randn(DataType.FLOAT, 3, 96);
        INDArray vector = rows.getRow(2);
        INDArray actual = Nd4j.create(DataType.FLOAT, 80);
        MMulTranspose transpose = MMulTranspose.builder().transposeA(true).build();
        Runnable kernel = kernel(new Mmul(matrix, vector, actual, 1.0, 0.0, transpose), List.of(matrix, vector), actual);
        for (int step = 0; step < 3; step++) {
            kernel.run();
            INDArray expected = vector.reshape(1, 96).mmul(matrix).reshape(80);
            assertClose(expected, actual, 2e-5, "step " + step);
            rows.getRow(2).assign(Nd4j.randn(DataType.FLOAT, 96));
            matrix.addi(Nd4j.randn(DataType.FLOAT, 96, 80));
        }
    }

    @Test
    void layerNormIsLibnd4jsOverTheLastAxis() {
        for (long[] shape : new long[][] {{3, 37}, {5, 256}, {2, 4, 19}}) {
            long width = shape[shape.length - 1];
            INDArray x = Nd4j.randn(DataType.FLOAT, shape).muli(3).addi(1);
            x.slice(0).assign(2.5f); // σ = 0: libnd4j's 0 / 0 becomes 0, the row its bias
            INDArray gain = Nd4j.rand(DataType.FLOAT, width).addi(0.5);
            INDArray bias = Nd4j.randn(DataType.FLOAT, width);
            LayerNorm op = new LayerNorm(x, gain, bias, x.ulike(), false, shape.length - 1);
            INDArray actual = x.ulike();
            kernel(op, List.of(x, gain, bias), actual).run();
            Nd4j.exec(op);
            assertClose(op.outputArguments().get(0), actual, 1e-5, "layer_norm " + Arrays.toString(shape));
        }
    }

    @Test
    void oneQueryAttentionIsLibnd4jsOverAPermutedCache() {
        int heads = 4;
        int size = 16;
        for (int positions : new int[] {1, 7, 128}) {
            INDArray cacheKeys = Nd4j.randn(DataType.FLOAT, positions + 5, heads * size);
            INDArray cacheValues = Nd4j.randn(DataType.FLOAT, positions + 5, heads * size);
            INDArray keys = byHeadAndFeature(cacheKeys.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, positions),
                    org.nd4j.linalg.indexing.NDArrayIndex.all()), heads, size);
            INDArray values = byHeadAndFeature(cacheValues.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, positions),
                    org.nd4j.linalg.indexing.NDArrayIndex.all()), heads, size);
            INDArray queries = Nd4j.randn(DataType.FLOAT, heads, size, 1);
            for (boolean scaled : new boolean[] {true, false}) {
                DotProductAttention op = new DotProductAttention(queries, keys, values, null, scaled, false);
                INDArray expected = Nd4j.create(DataType.FLOAT, heads, size, 1);
                op.addOutputArgument(expected);
                INDArray actual = expected.ulike();
                kernel(op, List.of(queries, keys, values), actual).run();
                Nd4j.exec((CustomOp) op);
                assertClose(expected, actual, 1e-5, positions + " positions, scaled " + scaled);
            }
        }
    }

    @Test
    void otherFormsAreLeftToLibnd4j() {
        INDArray matrix = Nd4j.rand(DataType.FLOAT, 8, 8);
        // a short side would make it a low-rank product (LowRankProductsTest)
        INDArray square = Nd4j.rand(DataType.FLOAT, 64, 64);
        Mmul product = new Mmul(square, square, Nd4j.create(DataType.FLOAT, 64, 64), 1.0, 0.0, MMulTranspose.allFalse());
        assertNull(KERNELS.kernelFor(product, List.of(square, square), new INDArray[] {product.outputArguments().get(0)}, product.iArgs(),
                product.tArgs(), product.bArgs()), "a product of matrices");
        INDArray vector = Nd4j.rand(DataType.FLOAT, 8);
        Mmul scaled = new Mmul(matrix, vector, Nd4j.create(DataType.FLOAT, 8), 2.0, 0.0, MMulTranspose.allFalse());
        assertNull(KERNELS.kernelFor(scaled, List.of(matrix, vector), new INDArray[] {scaled.outputArguments().get(0)}, scaled.iArgs(),
                scaled.tArgs(), scaled.bArgs()), "a scaled product");
        INDArray doubles = Nd4j.rand(DataType.DOUBLE, 8, 8);
        Mmul fp64 = new Mmul(doubles, vector.castTo(DataType.DOUBLE), Nd4j.create(DataType.DOUBLE, 8), 1.0, 0.0, MMulTranspose.allFalse());
        assertNull(KERNELS.kernelFor(fp64, List.of(doubles, vector.castTo(DataType.DOUBLE)), new INDArray[] {fp64.outputArguments().get(0)},
                fp64.iArgs(), fp64.tArgs(), fp64.bArgs()), "fp64");

        INDArray x = Nd4j.rand(DataType.FLOAT, 4, 8);
        INDArray gain = Nd4j.ones(DataType.FLOAT, 4);
        LayerNorm firstAxis = new LayerNorm(x, gain, gain, x.ulike(), false, 0);
        assertNull(KERNELS.kernelFor(firstAxis, List.of(x, gain, gain), new INDArray[] {x.ulike()}, firstAxis.iArgs(), firstAxis.tArgs(),
                firstAxis.bArgs()), "layer_norm over another axis");

        INDArray queries = Nd4j.rand(DataType.FLOAT, 2, 4, 3);
        INDArray keys = Nd4j.rand(DataType.FLOAT, 2, 4, 5);
        DotProductAttention threeQueries = new DotProductAttention(queries, keys, keys, null, true, false);
        assertNull(KERNELS.kernelFor(threeQueries, List.of(queries, keys, keys), new INDArray[] {Nd4j.create(DataType.FLOAT, 2, 4, 3)},
                threeQueries.iArgs(), threeQueries.tArgs(), threeQueries.bArgs()), "several queries");
        INDArray query = Nd4j.rand(DataType.FLOAT, 2, 4, 1);
        INDArray featureStrided = Nd4j.rand(DataType.FLOAT, 2, 4, 5); // C order: a feature's neighbour is 5 elements away
        DotProductAttention strided = new DotProductAttention(query, featureStrided, featureStrided, null, true, false);
        assertNull(KERNELS.kernelFor(strided, List.of(query, featureStrided, featureStrided), new INDArray[] {Nd4j.create(DataType.FLOAT, 2, 4, 1)},
                strided.iArgs(), strided.tArgs(), strided.bArgs()), "keys whose features are not contiguous");
        INDArray mask = Nd4j.ones(DataType.FLOAT, 2, 5);
        DotProductAttention masked = new DotProductAttention(query, keys, keys, mask, true, false);
        assertNull(KERNELS.kernelFor(masked, List.of(query, keys, keys, mask), new INDArray[] {Nd4j.create(DataType.FLOAT, 2, 4, 1)},
                masked.iArgs(), masked.tArgs(), masked.bArgs()), "a mask");
    }

    /** {@code [P, heads · size] → [heads, size, P]}, as a decoder views its cache. */
    private static INDArray byHeadAndFeature(INDArray rows, int heads, int size) {
        return rows.reshape(rows.size(0), heads, size).permute(1, 2, 0);
    }

    private static Runnable kernel(CustomOp op, List<INDArray> inputs, INDArray output) {
        Runnable kernel = KERNELS.kernelFor((org.nd4j.autodiff.functions.DifferentialFunction) op, inputs, new INDArray[] {output}, op.iArgs(),
                op.tArgs(), op.bArgs());
        assertNotNull(kernel, op.opName() + " on " + inputs.stream().map(in -> Arrays.toString(in.shape())).toList() + " not covered");
        return kernel;
    }
}
