package io.peft4j.runtime.internal.vector;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.internal.ReplayKernels;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.AdamUpdater;
import org.nd4j.linalg.learning.config.Adam;

/**
 * Adam's step in peft4j's kernel gives libnd4j's bits: the moments, the update left in the gradient's
 * array and the parameter after {@code subi}, step after step (the step size's powers change every
 * iteration), for sizes with a tail after the last full vector and one split over threads, and for
 * hyper-parameters other than the defaults; and it says whether every update is finite, wherever a NaN
 * or an infinity lies.
 */
class AdamKernelTest {
    private static final VectorKernels KERNELS = new VectorKernels();

    @Test
    void stepsAreLibnd4jsBitForBit() {
        for (int length : new int[] {1, 1_037, 70_001}) {
            for (Adam config : new Adam[] {new Adam(1e-4), new Adam(3e-3, 0.8, 0.95, 1e-6)}) {
                compare(length, config, 40);
            }
        }
    }

    @Test
    void theUpdateSaysWhetherEveryValueIsFinite() {
        for (int length : new int[] {5, 1_037, 70_001}) {
            for (float bad : new float[] {Float.NaN, Float.POSITIVE_INFINITY, Float.NEGATIVE_INFINITY}) {
                for (int at : new int[] {0, length / 2, length - 1}) {
                    INDArray gradient = Nd4j.randn(DataType.FLOAT, length);
                    gradient.putScalar(at, bad);
                    INDArray parameter = Nd4j.randn(DataType.FLOAT, length);
                    INDArray m = Nd4j.zeros(DataType.FLOAT, length);
                    INDArray v = Nd4j.zeros(DataType.FLOAT, length);
                    ReplayKernels.ParameterStep step = KERNELS.adam(parameter, gradient, m, v);
                    assertFalse(step.update(1e-3, 0.9, 0.999, 1e-8, 0), bad + " at " + at + " of " + length);
                    // the kernel reads the arrays' memory without holding them: keep them reachable until here
                    assertTrue(m.length() + v.length() + parameter.length() + gradient.length() > 0);
                }
            }
        }
    }

    @Test
    void otherArraysAreLeftToLibnd4j() {
        INDArray p = Nd4j.rand(DataType.FLOAT, 4, 6);
        assertNull(KERNELS.adam(p, p.ulike(), p.ulike(), p.ulike().reshape(4, 6).transpose()), "a moment that is not contiguous");
        assertNull(KERNELS.adam(p, p.ulike(), p.ulike(), Nd4j.zeros(DataType.FLOAT, 23)), "moments of another length");
        INDArray doubles = p.castTo(DataType.DOUBLE);
        assertNull(KERNELS.adam(doubles, doubles.ulike(), doubles.ulike(), doubles.ulike()), "fp64");
    }

    private static void compare(int length, Adam config, int iterations) {
        Nd4j.getRandom().setSeed(length);
        INDArray expectedParameter = Nd4j.randn(DataType.FLOAT, length);
        INDArray actualParameter = expectedParameter.dup();
        AdamUpdater updater = new AdamUpdater(config);
        updater.setStateViewArray(Nd4j.zeros(DataType.FLOAT, 1, 2L * length), new long[] {length}, 'c', true);
        INDArray m = Nd4j.zeros(DataType.FLOAT, length);
        INDArray v = Nd4j.zeros(DataType.FLOAT, length);
        INDArray actualGradient = Nd4j.create(DataType.FLOAT, length);
        ReplayKernels.ParameterStep step = KERNELS.adam(actualParameter, actualGradient, m, v);
        assertNotNull(step, length + " values not covered");
        for (int iteration = 0; iteration < iterations; iteration++) {
            INDArray gradient = Nd4j.randn(DataType.FLOAT, length).muli(iteration % 3 == 0 ? 1e-3 : 2.0);
            actualGradient.assign(gradient);
            updater.applyUpdater(gradient, iteration, 0);
            expectedParameter.subi(gradient);
            boolean finite = step.update(config.getLearningRate(iteration, 0), config.getBeta1(), config.getBeta2(), config.getEpsilon(),
                    iteration);
            assertTrue(finite, "every update is finite");
            String what = length + " values, " + config + ", iteration " + iteration;
            assertArrayEquals(updater.getM().data().asFloat(), m.data().asFloat(), what + ": m");
            assertArrayEquals(updater.getV().data().asFloat(), v.data().asFloat(), what + ": v");
            assertArrayEquals(gradient.data().asFloat(), actualGradient.data().asFloat(), what + ": update");
            step.step();
            assertArrayEquals(expectedParameter.data().asFloat(), actualParameter.data().asFloat(), what + ": parameter");
        }
    }
}
