package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.internal.LossGradientChainRule;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.nd4j.autodiff.loss.LossReduce;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Sgd;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * ND4J M2.1's loss ops differentiate as if nothing followed them; with {@link LossGradientChainRule}
 * the gradients of losses that are reduced, scaled or summed afterwards match finite differences,
 * and without it they do not (so each case can fail). Also: a loss read directly from a trainable
 * variable, a second application, a loss that is the graph's loss, and one SGD step through
 * {@link SameDiffTrainer}.
 */
class LossGradientChainRuleTest {
    private static final int ROWS = 4;
    private static final int CLASSES = 5;
    private static final int[] LABELS = {1, 3, 0, 4};

    static Stream<Arguments> lossesFollowedByOps() {
        return Stream.of(
                Arguments.of("sparse softmax cross-entropy, mean", loss((sd, p) -> sd.loss.sparseSoftmaxCrossEntropy(p, labels(sd)).mean())),
                Arguments.of("softmax cross-entropy, times 3", loss((sd, p) -> sd.loss.softmaxCrossEntropy(oneHot(sd), p, null).mul(3))),
                Arguments.of("softmax cross-entropy unreduced, weighted sum", loss((sd, p) -> sd.loss.softmaxCrossEntropy(null, oneHot(sd), p, null,
                        LossReduce.NONE, 0).mul(sd.constant(Nd4j.createFromArray(0.5, 1.0, 2.0, 3.0).reshape(ROWS, 1))).sum())),
                Arguments.of("squared error unreduced, mean", loss((sd, p) -> sd.loss.meanSquaredError(null, oneHot(sd), p, null, LossReduce.NONE).mean())),
                Arguments.of("sigmoid cross-entropy plus squared error", loss((sd, p) -> sd.loss.sigmoidCrossEntropy(oneHot(sd), p, null)
                        .add(sd.loss.meanSquaredError(oneHot(sd), p, null).mul(0.25)))));
    }

    @ParameterizedTest(name = "{0}")
    @MethodSource("lossesFollowedByOps")
    void gradientsMatchFiniteDifferences(String name, BiFunction<SameDiff, SDVariable, SDVariable> loss) {
        SameDiff without = graph(loss, true);
        double ignored = FiniteDifferences.worstRelativeError(without, Map.of(), List.of("x"), "loss");
        assertTrue(ignored > 0.1, name + ": ND4J's gradient was already right (worst relative error " + ignored + ")");

        SameDiff with = graph(loss, true);
        assertTrue(!LossGradientChainRule.apply(with).isEmpty(), name + ": nothing corrected");
        double error = FiniteDifferences.worstRelativeError(with, Map.of(), List.of("x"), "loss");
        assertTrue(error < 1e-6, name + ": worst relative error " + error);
    }

    @Test
    void aLossReadDirectlyFromATrainableVariable() {
        // the backward op's output is then the variable's gradient itself, which training reads by name
        SameDiff sd = graph((s, p) -> s.loss.sparseSoftmaxCrossEntropy(p, labels(s)).mean(), false);
        assertEquals(List.of("sparse_softmax_cross_entropy_loss_with_logits"), LossGradientChainRule.apply(sd));
        double error = FiniteDifferences.worstRelativeError(sd, Map.of(), List.of("x"), "loss");
        assertTrue(error < 1e-6, "worst relative error " + error);
    }

    @Test
    void aSecondApplicationChangesNothing() {
        SameDiff sd = graph((s, p) -> s.loss.softmaxCrossEntropy(oneHot(s), p, null).mul(3), true);
        assertEquals(1, LossGradientChainRule.apply(sd).size());
        INDArray once = sd.calculateGradients(Map.of(), "x").get("x");
        assertEquals(List.of(), LossGradientChainRule.apply(sd));
        assertEquals(once, sd.calculateGradients(Map.of(), "x").get("x"));
    }

    @Test
    void aLossOpThatIsTheGraphsLossIsLeftAlone() {
        SameDiff sd = graph((s, p) -> s.loss.softmaxCrossEntropy(oneHot(s), p, null), true);
        assertEquals(List.of(), LossGradientChainRule.apply(sd));
        assertTrue(FiniteDifferences.worstRelativeError(sd, Map.of(), List.of("x"), "loss") < 1e-6);
    }

    @Test
    void sgdThroughTheTrainerStepsByTheMeanGradient() {
        SameDiff sd = graph((s, p) -> s.loss.sparseSoftmaxCrossEntropy(p, labels(s)).mean(), true);
        INDArray before = sd.getVariable("x").getArr().dup();
        INDArray tanh = Transforms.tanh(before, true);
        INDArray expected = before.sub(analyticMeanCrossEntropyGradient(tanh).muli(tanh.mul(tanh).rsubi(1)).muli(0.1));
        SameDiffTrainer.fit(sd, TrainingConfig.builder().updater(new Sgd(0.1)).dataSetFeatureMapping("unused").markLabelsUnused().build(),
                new SingletonMultiDataSetIterator(new MultiDataSet(new INDArray[] {Nd4j.zeros(DataType.DOUBLE, 1)}, null)), 1,
                new ProgressListener(null, 1));
        INDArray after = sd.getVariable("x").getArr();
        assertTrue(after.equalsWithEps(expected, 1e-10), "after one step " + after + ", expected " + expected);
    }

    /** (softmax(z) − onehot) / rows, the gradient of the mean cross-entropy over the rows of {@code z}. */
    private static INDArray analyticMeanCrossEntropyGradient(INDArray z) {
        INDArray exp = Nd4j.math().exp(z.sub(z.max(true, 1)));
        INDArray softmax = exp.div(exp.sum(true, 1));
        for (int row = 0; row < ROWS; row++) {
            softmax.putScalar(row, LABELS[row], softmax.getDouble(row, LABELS[row]) - 1);
        }
        return softmax.divi(ROWS);
    }

    /**
     * A graph with a trainable {@code x [4, 5]} (fp64) and the scalar {@code loss}; the loss reads
     * {@code tanh(x)}, or {@code x} itself when {@code throughAnOp} is false.
     */
    private static SameDiff graph(BiFunction<SameDiff, SDVariable, SDVariable> loss, boolean throughAnOp) {
        Nd4j.getRandom().setSeed(5);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.var("x", Nd4j.rand(DataType.DOUBLE, ROWS, CLASSES).subi(0.5).muli(3));
        sd.placeHolder("unused", DataType.DOUBLE, -1);
        SDVariable predictions = throughAnOp ? sd.math.tanh(x) : x;
        sd.setLossVariables(loss.apply(sd, predictions).rename("loss"));
        return sd;
    }

    private static BiFunction<SameDiff, SDVariable, SDVariable> loss(BiFunction<SameDiff, SDVariable, SDVariable> loss) {
        return loss;
    }

    private static SDVariable labels(SameDiff sd) {
        return sd.constant(Nd4j.createFromArray(LABELS));
    }

    private static SDVariable oneHot(SameDiff sd) {
        return sd.oneHot(labels(sd), CLASSES).castTo(DataType.DOUBLE);
    }
}
