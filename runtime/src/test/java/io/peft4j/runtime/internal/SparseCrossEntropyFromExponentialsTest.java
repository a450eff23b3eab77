package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.GraphSimplification;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.loss.SparseSoftmaxCrossEntropyLossWithLogits;
import org.nd4j.linalg.api.ops.impl.loss.bp.SparseSoftmaxCrossEntropyLossWithLogitsBp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A sparse softmax cross-entropy over logits {@code [batch, T, classes]} computed from one exponential
 * pass gives the loss op's loss and (chain-ruled) gradients to rounding, and the step no longer runs
 * libnd4j's loss op or its backward op; a per-label loss that is itself the graph's loss, and a graph
 * whose chain rule was not applied, are left alone.
 */
class SparseCrossEntropyFromExponentialsTest {
    private static final int SEQUENCE = 3;
    private static final int WIDTH = 4;
    private static final int CLASSES = 6;
    private static final Map<String, INDArray> BATCH = batch();

    private static Map<String, INDArray> batch() {
        Nd4j.getRandom().setSeed(17);
        INDArray features = Nd4j.rand(DataType.DOUBLE, 2, SEQUENCE, WIDTH).subi(0.5).muli(4);
        INDArray labels = Nd4j.createFromArray(new int[][] {{0, 5, 2}, {3, 3, 1}});
        return Map.of("x", features, "labels", labels);
    }

    @Test
    void lossAndGradientsEqualTheLossOps() {
        SameDiff original = graph(true);
        LossGradientChainRule.apply(original);
        Map<String, INDArray> expected = original.calculateGradients(BATCH, "w", "loss");
        double expectedLoss = original.output(BATCH, "loss").get("loss").getDouble(0);

        SameDiff rewritten = graph(true);
        LossGradientChainRule.apply(rewritten);
        GraphSimplification report = GradientGraphSimplifier.simplify(rewritten, () -> BATCH);
        assertEquals(1, report.crossEntropiesFromExponentials(), report.describe());
        Map<String, INDArray> actual = rewritten.calculateGradients(BATCH, "w", "loss");

        double scale = expected.get("w").amaxNumber().doubleValue();
        assertEquals(0.0, expected.get("w").sub(actual.get("w")).amaxNumber().doubleValue(), 1e-12 * scale);
        SameDiff gradients = rewritten.getFunction("grad");
        assertEquals(expectedLoss, gradients.output(BATCH, "loss").get("loss").getDouble(0), 1e-12 * Math.abs(expectedLoss));
        for (SameDiffOp op : gradients.getOps().values()) {
            if (op.getOp() instanceof SparseSoftmaxCrossEntropyLossWithLogits || op.getOp() instanceof SparseSoftmaxCrossEntropyLossWithLogitsBp) {
                String output = op.getOutputsOfOp().get(0);
                String read = op.getOp() instanceof SparseSoftmaxCrossEntropyLossWithLogits ? output : LossGradientChainRule.productOf(output);
                assertTrue(gradients.getVariables().get(read).getInputsForOp().isEmpty(),
                        op.getOp().opName() + " is still needed: the step would compute it");
            }
        }
    }

    @Test
    void aPerLabelLossThatIsTheGraphsLossIsLeftAlone() {
        SameDiff sd = graph(false);
        LossGradientChainRule.apply(sd);
        assertEquals(0, GradientGraphSimplifier.simplify(sd, () -> BATCH).crossEntropiesFromExponentials());
    }

    @Test
    void nothingWithoutTheChainRule() {
        SameDiff sd = graph(true);
        assertEquals(0, GradientGraphSimplifier.simplify(sd, () -> BATCH).crossEntropiesFromExponentials());
    }

    /** Logits {@code tanh(x) · w [batch, T, classes]}; the loss is their mean cross-entropy, or the per-label one. */
    private static SameDiff graph(boolean mean) {
        Nd4j.getRandom().setSeed(19);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
        SDVariable labels = sd.placeHolder("labels", DataType.INT32, -1, SEQUENCE);
        SDVariable w = sd.var("w", Nd4j.rand(DataType.DOUBLE, WIDTH, CLASSES).subi(0.5).muli(2));
        SDVariable logits = sd.reshape(sd.math.tanh(sd.reshape(x, -1, WIDTH)).mmul(w), -1, SEQUENCE, CLASSES);
        SDVariable perLabel = sd.loss.sparseSoftmaxCrossEntropy(logits, labels);
        sd.setLossVariables((mean ? perLabel.mean() : perLabel).rename("loss"));
        return sd;
    }
}
