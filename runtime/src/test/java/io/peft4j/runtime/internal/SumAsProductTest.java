package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Sums and means as products with ones equal ND4J's reductions to rounding, in shape too, for a
 * last axis of 130 (kept or dropped) and for one or two leading axes, and for batches of two sizes
 * through one graph (only the summed sizes are fixed).
 */
class SumAsProductTest {
    private static final int SEQUENCE = 3;
    private static final int WIDTH = 130;

    @Test
    void lastAxisSumsAndMeans() {
        for (boolean mean : new boolean[] {false, true}) {
            for (boolean keepDims : new boolean[] {false, true}) {
                SameDiff sd = SameDiff.create();
                SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
                SDVariable product = SumAsProduct.lastAxis(sd, x, 3, WIDTH, mean, keepDims);
                for (int batch : new int[] {4, 1}) {
                    INDArray input = input(batch);
                    INDArray expected = mean ? input.mean(keepDims, 2) : input.sum(keepDims, 2);
                    assertEqual(expected, sd.output(Map.of("x", input), product.name()).get(product.name()),
                            (mean ? "mean" : "sum") + (keepDims ? ", kept" : "") + ", batch " + batch);
                }
            }
        }
    }

    @Test
    void leadingAxesSums() {
        for (int count : new int[] {1, 2}) {
            SameDiff sd = SameDiff.create();
            SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
            SDVariable product = SumAsProduct.leadingAxes(sd, x, 3, count);
            for (int batch : new int[] {4, 1}) {
                INDArray input = input(batch);
                INDArray expected = count == 1 ? input.sum(0) : input.sum(0, 1);
                assertEqual(expected, sd.output(Map.of("x", input), product.name()).get(product.name()), count + " axes, batch " + batch);
            }
        }
    }

    private static INDArray input(int batch) {
        Nd4j.getRandom().setSeed(batch);
        return Nd4j.rand(DataType.DOUBLE, batch, SEQUENCE, WIDTH).subi(0.5);
    }

    private static void assertEqual(INDArray expected, INDArray actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what);
        assertEquals(0.0, expected.sub(actual).amaxNumber().doubleValue(), 1e-12, what);
    }
}
