package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Map;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A matrix product with a frozen operand, differentiated for the other operand only, gives exactly
 * SameDiff's own gradient, for either operand frozen and every transpose combination.
 */
class FrozenOperandMatMulTest {

    @ParameterizedTest(name = "frozen first={0}, transpose a={1}, transpose b={2}")
    @CsvSource({
            "false, false, false", "false, true, false", "false, false, true", "false, true, true",
            "true, false, false", "true, true, false", "true, false, true", "true, true, true"})
    void gradientOfTheTrainableOperandIsSameDiffsOwn(boolean frozenFirst, boolean transposeA, boolean transposeB) {
        INDArray original = gradient(frozenFirst, transposeA, transposeB, false);
        INDArray replaced = gradient(frozenFirst, transposeA, transposeB, true);

        assertArrayEquals(original.shape(), replaced.shape());
        assertEquals(0.0, original.sub(replaced).amaxNumber().doubleValue(), 1e-6);
    }

    @org.junit.jupiter.api.Test
    void leavesProductsOfTwoTrainableOrTwoFrozenOperandsAlone() {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", Nd4j.rand(DataType.FLOAT, 3, 4));
        SDVariable w = sd.var("w", Nd4j.rand(DataType.FLOAT, 4, 5));
        SDVariable c = sd.constant("c", Nd4j.rand(DataType.FLOAT, 5, 2));
        SDVariable d = sd.constant("d", Nd4j.rand(DataType.FLOAT, 2, 2));
        x.mmul(w).mmul(c).sum();
        c.mmul(d);

        assertEquals(1, FrozenOperandMatMul.replaceIn(sd), "only (x·w)·c has one frozen operand");
        assertEquals(0, FrozenOperandMatMul.replaceIn(sd), "replacing twice changes nothing");
    }

    /** {@code loss = Σ tanh(op(a)·op(b))²} with one operand a constant; the gradient of the other. */
    private static INDArray gradient(boolean frozenFirst, boolean transposeA, boolean transposeB, boolean replace) {
        Nd4j.getRandom().setSeed(7);
        INDArray a = Nd4j.rand(DataType.DOUBLE, transposeA ? new long[] {4, 3} : new long[] {3, 4}).subi(0.5);
        INDArray b = Nd4j.rand(DataType.DOUBLE, transposeB ? new long[] {5, 4} : new long[] {4, 5}).subi(0.5);
        SameDiff sd = SameDiff.create();
        SDVariable first = frozenFirst ? sd.constant("a", a) : sd.var("a", a);
        SDVariable second = frozenFirst ? sd.var("b", b) : sd.constant("b", b);
        SDVariable product = sd.mmul(first, second, transposeA, transposeB, false);
        sd.math.square(sd.math.tanh(product)).sum().rename("loss");
        sd.setLossVariables("loss");
        if (replace) {
            assertEquals(1, FrozenOperandMatMul.replaceIn(sd));
        }
        String trainable = frozenFirst ? "b" : "a";
        return sd.calculateGradients(Map.of(), trainable).get(trainable);
    }
}
