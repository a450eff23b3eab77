package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.CsvSource;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.reduce.MmulBp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A pruned gradient graph computes exactly SameDiff's own gradients for the trainable variables,
 * with one {@code matmul} instead of a {@code matmul_bp} wherever one operand's gradient is unused.
 */
class MatMulGradientPrunerTest {

    @ParameterizedTest(name = "frozen first={0}, transpose a={1}, transpose b={2}, trainable behind tanh={3}")
    @CsvSource({
            "false, false, false, false", "false, true, false, false", "false, false, true, false", "false, true, true, false",
            "true, false, false, false", "true, true, false, false", "true, false, true, false", "true, true, true, false",
            "false, false, false, true", "false, true, true, true", "true, false, false, true", "true, true, true, true"})
    void gradientOfTheTrainableSideIsSameDiffsOwn(boolean frozenFirst, boolean transposeA, boolean transposeB,
                                                  boolean behindActivation) {
        INDArray original = trainableGradient(frozenFirst, transposeA, transposeB, behindActivation, false);
        INDArray pruned = trainableGradient(frozenFirst, transposeA, transposeB, behindActivation, true);

        assertArrayEquals(original.shape(), pruned.shape());
        assertEquals(0.0, original.sub(pruned).amaxNumber().doubleValue(), 1e-12);
    }

    @Test
    void dropsTheGradientOfAnInputWithNothingTrainableUpstream() {
        SameDiff sd = SameDiff.create();
        SDVariable tokens = sd.placeHolder("tokens", DataType.DOUBLE, -1, 4);
        SDVariable weight = sd.var("weight", Nd4j.rand(DataType.DOUBLE, 4, 3));
        sd.math.tanh(tokens).mmul(weight).sum().rename("loss");
        sd.setLossVariables("loss");
        Map<String, INDArray> feed = Map.of("tokens", Nd4j.rand(DataType.DOUBLE, 5, 4));
        INDArray expected = sd.calculateGradients(feed, "weight").get("weight");

        SameDiff again = SameDiff.create();
        SDVariable tokensAgain = again.placeHolder("tokens", DataType.DOUBLE, -1, 4);
        again.math.tanh(tokensAgain).mmul(again.var("weight", sd.getArrForVarName("weight").dup())).sum().rename("loss");
        again.setLossVariables("loss");

        assertEquals(1, MatMulGradientPruner.prune(again));
        assertEquals(0, matMulBackwardOps(again));
        assertEquals(0.0, expected.sub(again.calculateGradients(feed, "weight").get("weight")).amaxNumber().doubleValue(), 1e-12);
    }

    @Test
    void leavesProductsWhoseGradientsAreBothUsedAlone() {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", Nd4j.rand(DataType.FLOAT, 3, 4));
        SDVariable w = sd.var("w", Nd4j.rand(DataType.FLOAT, 4, 5));
        SDVariable frozen = sd.constant("frozen", Nd4j.rand(DataType.FLOAT, 5, 2));
        sd.math.tanh(x.mmul(w)).mmul(frozen).sum().rename("loss");
        sd.setLossVariables("loss");

        assertEquals(1, MatMulGradientPruner.prune(sd), "only the product with the frozen weight");
        assertEquals(1, matMulBackwardOps(sd), "x · w needs both gradients");
        assertEquals(0, MatMulGradientPruner.prune(sd), "pruning twice changes nothing");
    }

    /** {@code loss = Σ tanh(op(a)·op(b))²}: one operand a constant, the other trainable (or tanh of a trainable). */
    private static INDArray trainableGradient(boolean frozenFirst, boolean transposeA, boolean transposeB,
                                              boolean behindActivation, boolean prune) {
        Nd4j.getRandom().setSeed(7);
        INDArray a = Nd4j.rand(DataType.DOUBLE, transposeA ? new long[] {4, 3} : new long[] {3, 4}).subi(0.5);
        INDArray b = Nd4j.rand(DataType.DOUBLE, transposeB ? new long[] {5, 4} : new long[] {4, 5}).subi(0.5);
        SameDiff sd = SameDiff.create();
        SDVariable trainable = sd.var("trainable", frozenFirst ? b : a);
        SDVariable frozen = sd.constant("frozen", frozenFirst ? a : b);
        SDVariable trainableSide = behindActivation ? sd.math.tanh(trainable) : trainable;
        SDVariable product = frozenFirst ? sd.mmul(frozen, trainableSide, transposeA, transposeB, false)
                : sd.mmul(trainableSide, frozen, transposeA, transposeB, false);
        sd.math.square(sd.math.tanh(product)).sum().rename("loss");
        sd.setLossVariables("loss");
        if (prune) {
            assertEquals(1, MatMulGradientPruner.prune(sd));
            assertEquals(0, matMulBackwardOps(sd));
        }
        return sd.calculateGradients(Map.of(), "trainable").get("trainable");
    }

    private static long matMulBackwardOps(SameDiff sd) {
        return sd.getFunction("grad").getOps().values().stream().filter(op -> op.getOp() instanceof MmulBp).count();
    }
}
