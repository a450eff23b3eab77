package io.peft4j.runtime.internal.vector;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.internal.ExactGelu;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.api.ops.Op;
import org.nd4j.linalg.api.ops.impl.reduce.floating.Mean;
import org.nd4j.linalg.api.ops.impl.reduce.same.Sum;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarAdd;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarDivision;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarMultiplication;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarReverseDivision;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarReverseSubtraction;
import org.nd4j.linalg.api.ops.impl.scalar.ScalarSubtraction;
import org.nd4j.linalg.api.ops.impl.shape.Permute;
import org.nd4j.linalg.api.ops.impl.transforms.custom.SoftMax;
import org.nd4j.linalg.api.ops.impl.transforms.floating.Sqrt;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.AddOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.DivOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.MulOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.SubOp;
import org.nd4j.linalg.api.ops.impl.transforms.same.Abs;
import org.nd4j.linalg.api.ops.impl.transforms.same.Negative;
import org.nd4j.linalg.api.ops.impl.transforms.same.Square;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Erf;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Exp;
import org.nd4j.linalg.api.ops.impl.transforms.strict.GELU;
import org.nd4j.linalg.api.ops.impl.transforms.strict.GELUDerivative;
import org.nd4j.linalg.api.ops.impl.transforms.strict.PreciseGELU;
import org.nd4j.linalg.api.ops.impl.transforms.strict.Sigmoid;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * peft4j's vector kernels compute what libnd4j's ops compute: the arithmetic bit for bit (one IEEE
 * operation per element either way) for every broadcast layout they take, with either operand
 * broadcast, at lengths that leave a tail after the last full vector, and on sizes split over threads;
 * the transcendental functions (exp, sigmoid, gelu) to within a few units in the last place, softmax to within a dozen;
 * erf within 2e-7.
 * Calls they do not cover (other types, strided views, broadcasts of both operands, softmax along
 * another axis, arithmetic on large arrays) are refused, so that libnd4j runs them.
 */
class VectorKernelsTest {
    private static final VectorKernels KERNELS = new VectorKernels();

    @Test
    void arithmeticIsLibnd4jsBitForBit() {
        long[][][] layouts = {
                {{3, 5, 37}, {3, 5, 37}}, // equal shapes, a tail of 37 mod lanes
                {{2, 7, 19}, {19}}, // a bias along the last axis
                {{4, 6, 21}, {4, 6, 1}}, // a per-row statistic
                {{2, 3, 5, 17}, {2, 1, 1, 17}}, // an attention mask
                {{6, 11}, {}}, // a scalar array
                {{8, 64, 64}, {8, 64, 1}}, // the largest size they take
        };
        for (long[][] layout : layouts) {
            INDArray full = Nd4j.randn(DataType.FLOAT, layout[0]);
            INDArray other = Nd4j.rand(DataType.FLOAT, layout[1]).addi(0.5f);
            for (boolean otherFirst : new boolean[] {false, true}) {
                INDArray a = otherFirst ? other : full;
                INDArray b = otherFirst ? full : other;
                String what = Arrays.toString(a.shape()) + " with " + Arrays.toString(b.shape());
                assertBitwise(new AddOp(a, b, full.ulike()), List.of(a, b), "add " + what);
                assertBitwise(new SubOp(a, b, full.ulike()), List.of(a, b), "subtract " + what);
                assertBitwise(new MulOp(a, b, full.ulike()), List.of(a, b), "multiply " + what);
                assertBitwise(new DivOp(a, b, full.ulike()), List.of(a, b), "divide " + what);
            }
        }
    }

    @Test
    void scalarOpsAreLibnd4jsBitForBit() {
        for (long[] shape : new long[][] {{5, 37}, {16, 2048}}) {
            INDArray x = Nd4j.randn(DataType.FLOAT, shape).addi(0.1f);
            assertBitwise(new ScalarAdd(x, null, x.ulike(), 0.7), List.of(x), "add_scalar");
            assertBitwise(new ScalarSubtraction(x, null, x.ulike(), 0.3), List.of(x), "sub_scalar");
            assertBitwise(new ScalarReverseSubtraction(x, null, x.ulike(), 1.0), List.of(x), "rsub_scalar");
            assertBitwise(new ScalarMultiplication(x, null, x.ulike(), 0.125), List.of(x), "mul_scalar");
            assertBitwise(new ScalarDivision(x, null, x.ulike(), 3.0), List.of(x), "div_scalar");
            assertBitwise(new ScalarReverseDivision(x, null, x.ulike(), 2.0), List.of(x), "rdiv_scalar");
        }
    }

    @Test
    void exactUnaryFunctionsAreLibnd4jsBitForBit() {
        for (long[] shape : new long[][] {{3, 41}, {16, 2048}}) {
            INDArray x = Nd4j.randn(DataType.FLOAT, shape);
            assertBitwise(new Negative(x, x.ulike()), List.of(x), "neg");
            assertBitwise(new Square(x, x.ulike()), List.of(x), "square");
            assertBitwise(new Abs(x, x.ulike()), List.of(x), "abs");
            INDArray positive = x.mul(x);
            assertBitwise(new Sqrt(positive, positive.ulike()), List.of(positive), "sqrt");
        }
    }

    @Test
    void exponentialsAndSoftmaxAgreeWithLibnd4jToRounding() {
        // [3, 300] and [1, 1024] (a decoding step's) are vectorised below the arithmetic's threshold
        for (long[] shape : new long[][] {{3, 41}, {3, 300}, {1, 1024}, {16, 64, 256}, {16, 4, 64, 64}}) {
            INDArray x = Nd4j.randn(DataType.FLOAT, shape).muli(3);
            assertClose(new Exp(x, x.ulike()), List.of(x), new long[0], 4e-7, "exp " + Arrays.toString(shape));
            assertClose(new Sigmoid(x, x.ulike()), List.of(x), new long[0], 4e-7, "sigmoid " + Arrays.toString(shape));
            int last = shape.length - 1;
            // the row's sum of exponentials is added in another order
            assertClose(new SoftMax(x, x.ulike(), last), List.of(x), new long[] {last}, 1.5e-6, "softmax " + Arrays.toString(shape));
        }
    }

    @Test
    void geluAndItsDerivativeAgreeWithLibnd4jToRounding() {
        for (long[] shape : new long[][] {{3, 41}, {3, 300}, {1, 1024}, {16, 64, 1024}}) {
            INDArray x = Nd4j.randn(DataType.FLOAT, shape).muli(4);
            assertClose(new GELU(x, x.ulike()), List.of(x), new long[0], 6e-7, "gelu " + Arrays.toString(shape));
            // The derivative crosses zero near x = -0.75, and its 1 − σ(t) cancels for large t (an error of
            // |t| · 6e-8 whichever way it is written), so the bound is absolute: 1e-6 on values up to 1.13.
            INDArray expected = x.ulike();
            Nd4j.exec(new GELUDerivative(x, expected));
            INDArray actual = x.ulike();
            kernel(new GELUDerivative(x, x.ulike()), List.of(x), actual, new long[0]).run();
            float[] e = expected.data().asFloat();
            float[] a = actual.data().asFloat();
            for (int i = 0; i < e.length; i++) {
                assertTrue(Math.abs(e[i] - a[i]) <= 1e-6,
                        "_geluderivative " + Arrays.toString(shape) + " at " + i + ": libnd4j " + e[i] + ", kernel " + a[i]);
            }
        }
        INDArray precise = Nd4j.randn(DataType.FLOAT, 16, 2048);
        assertNull(KERNELS.kernelFor(new PreciseGELU(precise, precise.ulike()), List.of(precise), new INDArray[] {precise.ulike()},
                new long[0], new double[0], new boolean[0]), "precise_gelu (tanh) stays with libnd4j");
    }

    @Test
    void theFusedExactGeluComputesWhatItsOpsCompute() {
        ExactGelu.Scalars scalars = new ExactGelu.Scalars(0.5f, (float) Math.sqrt(2.0), true, 1f);
        for (long[] shape : new long[][] {{3, 41}, {3, 300}, {16, 2048}}) {
            INDArray x = Nd4j.randn(DataType.FLOAT, shape).muli(3);
            Map<ExactGelu.Part, INDArray> parts = new EnumMap<>(ExactGelu.Part.class);
            for (ExactGelu.Part part : ExactGelu.Part.values()) {
                parts.put(part, x.ulike());
            }
            Runnable fused = KERNELS.exactGelu(x, scalars, parts);
            assertNotNull(fused, "exact GELU on " + Arrays.toString(shape));
            fused.run();
            // the ops as SameDiff's graph runs them, in libnd4j
            INDArray half = x.mul(0.5f);
            INDArray scaled = x.div((float) Math.sqrt(2.0));
            INDArray squared = scaled.mul(scaled);
            INDArray negated = squared.mul(-1f);
            String where = " on " + Arrays.toString(shape);
            assertArrayEquals(half.data().asFloat(), parts.get(ExactGelu.Part.HALF).data().asFloat(), "0.5 x" + where);
            assertArrayEquals(scaled.data().asFloat(), parts.get(ExactGelu.Part.SCALED).data().asFloat(), "x / √2" + where);
            assertArrayEquals(squared.data().asFloat(), parts.get(ExactGelu.Part.SQUARED).data().asFloat(), "(x / √2)²" + where);
            assertArrayEquals(negated.data().asFloat(), parts.get(ExactGelu.Part.NEGATED).data().asFloat(), "−(x / √2)²" + where);
            INDArray erf = scaled.ulike();
            Nd4j.exec(new Erf(scaled, erf));
            assertTrue(erf.sub(parts.get(ExactGelu.Part.ERF)).amaxNumber().doubleValue() < 2e-7, "erf" + where);
            INDArray onePlusErf = parts.get(ExactGelu.Part.ERF).add(1f);
            assertArrayEquals(onePlusErf.data().asFloat(), parts.get(ExactGelu.Part.ONE_PLUS_ERF).data().asFloat(), "erf + 1" + where);
            assertArrayEquals(half.mul(onePlusErf).data().asFloat(), parts.get(ExactGelu.Part.OUTPUT).data().asFloat(), "the GELU" + where);
            INDArray gaussian = negated.ulike();
            Nd4j.exec(new Exp(negated, gaussian));
            assertTrue(gaussian.sub(parts.get(ExactGelu.Part.GAUSSIAN)).amaxNumber().doubleValue() < 1e-7, "e^−(x / √2)²" + where);

            INDArray g = Nd4j.randn(DataType.FLOAT, shape);
            INDArray coefficient = x.ulike().assign(2 / Math.sqrt(Math.PI));
            INDArray result = x.ulike();
            Runnable gradient = KERNELS.exactGeluGradient(g, half, onePlusErf, gaussian, coefficient, result, scalars);
            assertNotNull(gradient, "exact GELU gradient on " + Arrays.toString(shape));
            gradient.run();
            INDArray expected = g.mul(onePlusErf).mul(0.5f).add(coefficient.mul(gaussian).mul(g.mul(half)).div((float) Math.sqrt(2.0)));
            assertArrayEquals(expected.data().asFloat(), result.data().asFloat(), "the gradient: SameDiff's six ops' bits" + where);
        }
    }

    @Test
    void erfIsWithinTwoTenMillionthsOfLibnd4js() {
        float[] grid = new float[24_001];
        for (int i = 0; i < grid.length; i++) {
            grid[i] = -6f + 12f * i / (grid.length - 1);
        }
        INDArray x = Nd4j.createFromArray(grid);
        INDArray expected = x.ulike();
        Nd4j.exec(new Erf(x, expected));
        INDArray actual = x.ulike();
        kernel(new Erf(x, x.ulike()), List.of(x), actual, new long[0]).run();
        assertTrue(expected.sub(actual).amaxNumber().doubleValue() < 2e-7, "largest difference " + expected.sub(actual).amaxNumber());
        INDArray tiny = Nd4j.createFromArray(1e-6f, -3e-5f, 1e-3f);
        INDArray tinyErf = tiny.ulike();
        kernel(new Erf(tiny, tiny.ulike()), List.of(tiny), tinyErf, new long[0]).run();
        for (int i = 0; i < 3; i++) {
            double exact = 2 / Math.sqrt(Math.PI) * tiny.getDouble(i);
            assertEquals(exact, tinyErf.getDouble(i), Math.abs(exact) * 1e-6, "erf near 0 keeps its relative accuracy");
        }
    }

    @Test
    void gradientsOfProductsAreLibnd4jsBitForBit() {
        for (long[] shape : new long[][] {{3, 5, 37}, {64, 64, 128}}) {
            INDArray a = Nd4j.randn(DataType.FLOAT, shape);
            INDArray b = Nd4j.randn(DataType.FLOAT, shape);
            INDArray g = Nd4j.randn(DataType.FLOAT, shape);
            for (String name : new String[] {"multiply_bp"}) {
                INDArray[] expected = {a.ulike(), a.ulike()};
                Nd4j.exec(DynamicCustomOp.builder(name).addInputs(a, b, g).addOutputs(expected).build());
                INDArray[] actual = {a.ulike(), a.ulike()};
                Runnable kernel = KERNELS.kernelFor(DynamicCustomOp.builder(name).build(), List.of(a, b, g), actual, new long[0], new double[0],
                        new boolean[0]);
                assertNotNull(kernel, name);
                kernel.run();
                for (int i = 0; i < 2; i++) {
                    assertArrayEquals(expected[i].data().asFloat(), actual[i].data().asFloat(), name + " output " + i + " " + Arrays.toString(shape));
                }
            }
        }
    }

    @Test
    void permutationsKeepingTheLastAxisAreExactCopies() {
        INDArray heads = Nd4j.randn(DataType.FLOAT, 4, 16, 6, 37);
        for (int[] axes : new int[][] {{0, 2, 1, 3}, {2, 0, 1, 3}, {1, 2, 0, 3}, {0, 1, 2, 3}}) {
            INDArray expected = heads.permute(axes).dup('c');
            INDArray actual = Nd4j.create(DataType.FLOAT, expected.shape());
            long[] iArgs = Arrays.stream(axes).asLongStream().toArray();
            Runnable kernel = KERNELS.kernelFor(new Permute(heads, actual, axes), List.of(heads), new INDArray[] {actual}, iArgs, new double[0],
                    new boolean[0]);
            assertNotNull(kernel, Arrays.toString(axes));
            kernel.run();
            assertArrayEquals(expected.data().asFloat(), actual.data().asFloat(), "permute " + Arrays.toString(axes));
        }
        INDArray transposed = Nd4j.create(DataType.FLOAT, 4, 16, 37, 6);
        assertNull(KERNELS.kernelFor(new Permute(heads, transposed, 0, 1, 3, 2), List.of(heads), new INDArray[] {transposed},
                new long[] {0, 1, 3, 2}, new double[0], new boolean[0]), "the last axis moves: not a copy of rows");
    }

    @Test
    void rowSumsAndMeansAndTheirGradientsAgreeWithLibnd4j() {
        for (long[] shape : new long[][] {{4, 5, 37}, {64, 128, 64}}) {
            INDArray x = Nd4j.randn(DataType.FLOAT, shape);
            int last = shape.length - 1;
            INDArray bound = Transforms.abs(x).sum(true, last).muli(1e-6f);
            for (boolean mean : new boolean[] {true, false}) {
                INDArray expected = Nd4j.create(DataType.FLOAT, shape[0], shape[1], 1);
                DifferentialFunction op = mean ? new Mean(x, expected, true, last) : new Sum(x, expected, true, last);
                execute(op);
                INDArray actual = expected.ulike();
                kernel(op, List.of(x), actual, new long[0]).run();
                INDArray error = Transforms.abs(expected.sub(actual));
                INDArray allowed = mean ? bound.div(shape[last]) : bound;
                assertTrue(error.sub(allowed).maxNumber().doubleValue() <= 0, (mean ? "mean" : "sum") + " off by " + error.maxNumber());

                INDArray g = Nd4j.randn(DataType.FLOAT, shape[0], shape[1], 1);
                INDArray expectedGradient = x.ulike();
                String name = mean ? "reduce_mean_bp" : "reduce_sum_bp";
                Nd4j.exec(DynamicCustomOp.builder(name).addInputs(x, g).addOutputs(expectedGradient).addIntegerArguments(last).build());
                INDArray actualGradient = x.ulike();
                Runnable gradient = KERNELS.kernelFor(DynamicCustomOp.builder(name).build(), List.of(x, g), new INDArray[] {actualGradient},
                        new long[] {last}, new double[0], new boolean[0]);
                assertNotNull(gradient, name);
                gradient.run();
                assertArrayEquals(expectedGradient.data().asFloat(), actualGradient.data().asFloat(), name);
            }
        }
    }

    @Test
    void aViewWithAnOffsetIsReadFromItsFirstElement() {
        INDArray rows = Nd4j.randn(DataType.FLOAT, 6, 40);
        INDArray lower = rows.get(org.nd4j.linalg.indexing.NDArrayIndex.interval(3, 6), org.nd4j.linalg.indexing.NDArrayIndex.all());
        assertTrue(lower.offset() > 0);
        assertBitwise(new Negative(lower, lower.ulike()), List.of(lower), "neg of rows 3-5");
    }

    @Test
    void refusesWhatItDoesNotCover() {
        INDArray doubles = Nd4j.randn(DataType.DOUBLE, 4, 8);
        assertNull(KERNELS.kernelFor(new Exp(doubles, doubles.ulike()), List.of(doubles), new INDArray[] {doubles.ulike()}, new long[0],
                new double[0], new boolean[0]), "fp64");
        INDArray transposed = Nd4j.randn(DataType.FLOAT, 8, 4).transpose();
        assertNull(KERNELS.kernelFor(new Exp(transposed, transposed.ulike()), List.of(transposed), new INDArray[] {Nd4j.create(DataType.FLOAT, 4, 8)},
                new long[0], new double[0], new boolean[0]), "a strided view");
        INDArray column = Nd4j.randn(DataType.FLOAT, 5, 1);
        INDArray row = Nd4j.randn(DataType.FLOAT, 1, 7);
        INDArray outer = Nd4j.create(DataType.FLOAT, 5, 7);
        assertNull(KERNELS.kernelFor(new AddOp(column, row, outer), List.of(column, row), new INDArray[] {outer}, new long[0], new double[0], new boolean[0]),
                "both operands broadcast");
        INDArray x = Nd4j.randn(DataType.FLOAT, 4, 6, 8);
        assertNull(KERNELS.kernelFor(new SoftMax(x, x.ulike(), 1), List.of(x), new INDArray[] {x.ulike()}, new long[] {1}, new double[0], new boolean[0]),
                "softmax along a middle axis");
        INDArray large = Nd4j.randn(DataType.FLOAT, 64, 64, 128);
        assertNull(KERNELS.kernelFor(new AddOp(large, large, large.ulike()), List.of(large, large), new INDArray[] {large.ulike()}, new long[0],
                new double[0], new boolean[0]), "arithmetic over more than 32,768 elements stays in libnd4j, as fast there");
        INDArray middle = Nd4j.randn(DataType.FLOAT, 6, 1);
        assertNull(KERNELS.kernelFor(new AddOp(x, middle, x.ulike()), List.of(x, middle), new INDArray[] {x.ulike()}, new long[0], new double[0], new boolean[0]),
                "[6, 1] against [4, 6, 8]: broadcast on both sides of an equal axis");
    }

    private static void assertBitwise(DifferentialFunction op, List<INDArray> inputs, String what) {
        INDArray expected = output(op);
        execute(op);
        INDArray actual = expected.ulike();
        kernel(op, inputs, actual, new long[0]).run();
        assertArrayEquals(expected.data().asFloat(), actual.data().asFloat(), what + ": not libnd4j's bits");
    }

    private static void assertClose(DifferentialFunction op, List<INDArray> inputs, long[] iArgs, double relative, String what) {
        INDArray expected = output(op);
        execute(op);
        INDArray actual = expected.ulike();
        kernel(op, inputs, actual, iArgs).run();
        float[] e = expected.data().asFloat();
        float[] a = actual.data().asFloat();
        for (int i = 0; i < e.length; i++) {
            double tolerance = relative * Math.max(Math.abs(e[i]), 1e-30) + 1e-37;
            assertTrue(Math.abs(e[i] - a[i]) <= tolerance, what + " at " + i + ": libnd4j " + e[i] + ", kernel " + a[i]);
        }
    }

    private static Runnable kernel(DifferentialFunction op, List<INDArray> inputs, INDArray output, long[] iArgs) {
        Runnable kernel = KERNELS.kernelFor(op, inputs, new INDArray[] {output}, iArgs, new double[0], new boolean[0]);
        assertNotNull(kernel, op.opName() + " on " + inputs.stream().map(in -> Arrays.toString(in.shape())).toList() + " not covered");
        return kernel;
    }

    private static INDArray output(DifferentialFunction op) {
        return op instanceof CustomOp custom ? custom.outputArguments().get(0) : ((Op) op).z();
    }

    private static void execute(DifferentialFunction op) {
        if (op instanceof CustomOp custom) {
            Nd4j.exec(custom);
        } else {
            Nd4j.exec((Op) op);
        }
    }
}
