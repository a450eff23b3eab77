package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.GraphSimplification;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDIndex;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.gradient.SoftmaxBp;
import org.nd4j.linalg.api.ops.impl.transforms.strict.GELU;
import org.nd4j.linalg.api.ops.impl.transforms.strict.GELUDerivative;
import org.nd4j.linalg.api.ops.random.impl.BernoulliDistribution;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/**
 * A simplified gradient function computes exactly what SameDiff's own does, on a graph written the
 * long way: layers that flatten {@code [batch, sequence, d]} for a product and restore the shape from
 * {@code shape_of}, each asking for the shape itself, a reshape of a reshape, a residual sum that a
 * shape op also reads, an identity, and a LayerNorm composed from primitives; ND4J's {@code gelu},
 * whose value and derivative the CPU rewrite computes from one sigmoid; and a softmax, whose gradient
 * comes from its output.
 */
class GradientGraphSimplifierTest {
    private static final int SEQUENCE = 3;
    private static final int WIDTH = 4;
    private static final INDArray FEATURES = features();
    private static final INDArray TARGETS = FEATURES.mul(0.5);

    private static INDArray features() {
        Nd4j.getRandom().setSeed(5);
        return Nd4j.rand(DataType.DOUBLE, 2, SEQUENCE, WIDTH).subi(0.5);
    }

    @Test
    void gradientsAreSameDiffsOwnAndEveryRewriteApplies() {
        SameDiff original = longWayGraph();
        Map<String, INDArray> expected = original.calculateGradients(Map.of("x", FEATURES, "y", TARGETS), "w1", "w2", "gain");

        SameDiff simplified = longWayGraph();
        GraphSimplification report = GradientGraphSimplifier.simplify(simplified);
        Map<String, INDArray> actual = simplified.calculateGradients(Map.of("x", FEATURES, "y", TARGETS), "w1", "w2", "gain");

        for (String name : expected.keySet()) {
            assertEquals(0.0, expected.get(name).sub(actual.get(name)).amaxNumber().doubleValue(), 0.0, name);
        }
        assertTrue(report.duplicatesMerged() > 0, report.describe());
        assertTrue(report.identitiesBypassed() > 0, report.describe());
        assertTrue(report.zeroSumsBypassed() > 0, report.describe());
        assertTrue(report.reshapeChainsShortened() > 0, report.describe());
        assertTrue(report.opsAfter() < report.opsBefore(), report.describe());
    }

    @Test
    void geluAndItsDerivativeComeFromOneSigmoid() {
        SameDiff original = geluGraph();
        Map<String, INDArray> expected = original.calculateGradients(Map.of("x", FEATURES), "w1", "w2");
        INDArray expectedLoss = original.output(Map.of("x", FEATURES), "loss").get("loss");

        SameDiff rewritten = geluGraph();
        GraphSimplification report = GradientGraphSimplifier.simplify(rewritten);
        Map<String, INDArray> actual = rewritten.calculateGradients(Map.of("x", FEATURES), "w1", "w2");

        assertEquals(1, report.gelusFromOneSigmoid(), report.describe());
        assertClose(expected, actual, 1e-7);
        assertUnread(rewritten, GELU.class, "the step would compute two transcendental kernels");
        assertUnread(rewritten, GELUDerivative.class, "the step would compute two transcendental kernels");
        assertEquals(expectedLoss.getDouble(0), rewritten.output(Map.of("x", FEATURES), "loss").get("loss").getDouble(0), 0.0,
                "the forward graph is the user's and stays as built");
    }

    @Test
    void geluStaysForStepsReplayedWithPeft4jsKernels() {
        assertEquals(1, GradientGraphSimplifier.simplify(geluGraph(DataType.DOUBLE), null, true).gelusFromOneSigmoid(),
                "the kernels take fp32 only: an fp64 gelu is still rewritten");
        SameDiff kept = geluGraph(DataType.FLOAT);
        GraphSimplification report = GradientGraphSimplifier.simplify(kept, null, true);
        assertEquals(0, report.gelusFromOneSigmoid(), report.describe());
        SameDiff gradients = kept.getFunction("grad");
        assertTrue(gradients.getOps().values().stream().anyMatch(op -> op.getOp().getClass() == GELUDerivative.class
                        && !gradients.getVariables().get(op.getOutputsOfOp().get(0)).getInputsForOp().isEmpty()),
                "the derivative op is still read: the kernels compute it in one pass");
    }

    @Test
    void softmaxGradientsComeFromTheSoftmaxOutput() {
        SameDiff original = softmaxGraph(1);
        Map<String, INDArray> expected = original.calculateGradients(Map.of("x", FEATURES), "w1", "w2");

        SameDiff rewritten = softmaxGraph(1);
        GraphSimplification report = GradientGraphSimplifier.simplify(rewritten);
        Map<String, INDArray> actual = rewritten.calculateGradients(Map.of("x", FEATURES), "w1", "w2");

        assertEquals(1, report.softmaxGradientsFromOutput(), report.describe());
        assertClose(expected, actual, 1e-12);
        assertUnread(rewritten, SoftmaxBp.class, "the step would compute the softmax twice");
    }

    /** Each gradient within {@code relative} of the largest magnitude of the expected one. */
    private static void assertClose(Map<String, INDArray> expected, Map<String, INDArray> actual, double relative) {
        for (String name : expected.keySet()) {
            double scale = expected.get(name).amaxNumber().doubleValue();
            assertEquals(0.0, expected.get(name).sub(actual.get(name)).amaxNumber().doubleValue(), relative * scale, name);
        }
    }

    /** No op of {@code type} in the gradient function has a reader left, so a training step skips it. */
    private static void assertUnread(SameDiff sd, Class<?> type, String why) {
        SameDiff gradients = sd.getFunction("grad");
        for (SameDiffOp op : gradients.getOps().values()) {
            if (type.isInstance(op.getOp())) {
                assertTrue(gradients.getVariables().get(op.getOutputsOfOp().get(0)).getInputsForOp().isEmpty(),
                        op.getOp().opName() + " is still read: " + why);
            }
        }
    }

    @Test
    void leavesASoftmaxAlongANegativeAxisAlone() {
        SameDiff original = softmaxGraph(-1);
        Map<String, INDArray> expected = original.calculateGradients(Map.of("x", FEATURES), "w1");

        SameDiff untouched = softmaxGraph(-1);
        assertEquals(0, GradientGraphSimplifier.simplify(untouched).softmaxGradientsFromOutput());
        assertEquals(0.0, expected.get("w1").sub(untouched.calculateGradients(Map.of("x", FEATURES), "w1").get("w1"))
                .amaxNumber().doubleValue(), 0.0);
    }

    @Test
    void aSecondCallFindsNothing() {
        SameDiff sd = longWayGraph();
        GraphSimplification first = GradientGraphSimplifier.simplify(sd);
        GraphSimplification second = GradientGraphSimplifier.simplify(sd);

        assertTrue(first.changedAnything());
        assertFalse(second.changedAnything(), second.describe());
        assertEquals(first.opsAfter(), second.opsBefore());
    }

    @Test
    void trainingTakesTheSameStepsAndReportsTheRewriteUnlessSwitchedOff() {
        Run asSameDiffBuiltIt = train("false");
        Run simplified = train(null);

        // the LayerNorm's division gradient (first batch given) agrees to rounding, the rest bit for bit
        assertArrayEquals(asSameDiffBuiltIt.report().losses(), simplified.report().losses(), 1e-12);
        assertEquals(0.0, asSameDiffBuiltIt.weights().sub(simplified.weights()).amaxNumber().doubleValue(), 1e-12);
        assertTrue(simplified.output().contains("1 division gradient from the quotient"), simplified.output());
        assertTrue(simplified.output().contains("[peft4j] training graph simplified: "), simplified.output());
        assertTrue(simplified.output().contains("-D" + SameDiffTrainer.SIMPLIFY_GRAPHS + "=false turns this off"), simplified.output());
        assertFalse(asSameDiffBuiltIt.output().contains("simplified"), asSameDiffBuiltIt.output());
    }

    @Test
    void neverMergesRandomOps() {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, WIDTH);
        SDVariable hidden = x.mmul(sd.var("w1", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH)));
        SDVariable sum = hidden.mul(sd.random.bernoulli(0.5, DataType.DOUBLE, WIDTH)).add(hidden.mul(sd.random.bernoulli(0.5, DataType.DOUBLE, WIDTH)));
        sd.math.square(sum).sum().rename("loss");
        sd.setLossVariables("loss");

        GradientGraphSimplifier.simplify(sd);

        SameDiff gradients = sd.getFunction("grad");
        long masksRead = gradients.getOps().values().stream()
                .filter(op -> op.getOp() instanceof BernoulliDistribution)
                .filter(op -> !gradients.getVariables().get(op.getOutputsOfOp().get(0)).getInputsForOp().isEmpty())
                .count();
        assertEquals(2, masksRead, "two masks drawn alike are two draws");
    }

    /** {@code loss = Σ (softmax(x · w1, axis) ⊙ (x · w2))²} over {@code x [batch, sequence, d]} (axis 1: across positions). */
    private static SameDiff softmaxGraph(int axis) {
        Nd4j.getRandom().setSeed(29);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5).muli(4));
        SDVariable w2 = sd.var("w2", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5));
        SDVariable flat = sd.reshape(x, -1, WIDTH);
        SDVariable weights = sd.nn.softmax(sd.reshape(flat.mmul(w1), -1, SEQUENCE, WIDTH), axis);
        sd.math.square(weights.mul(sd.reshape(flat.mmul(w2), -1, SEQUENCE, WIDTH))).sum().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    /** {@code loss = Σ (gelu(x · w1) · w2)²} over {@code x [batch, d]}. */
    private static SameDiff geluGraph() {
        return geluGraph(DataType.DOUBLE);
    }

    private static SameDiff geluGraph(DataType type) {
        Nd4j.getRandom().setSeed(23);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", type, -1, SEQUENCE, WIDTH);
        SDVariable flat = sd.reshape(x, -1, WIDTH);
        SDVariable hidden = sd.nn.gelu(flat.mmul(sd.var("w1", Nd4j.rand(type, WIDTH, WIDTH).subi(0.5).muli(6))));
        sd.math.square(hidden.mmul(sd.var("w2", Nd4j.rand(type, WIDTH, 2)))).sum().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    /**
     * {@code loss = Σ (LayerNorm(x + Linear2(identity(x + Linear1(x)))) − y)²}, each Linear flattening its input
     * to {@code [batch · sequence, d]} and restoring the shape from {@code shape_of}.
     */
    private static SameDiff longWayGraph() {
        Nd4j.getRandom().setSeed(17);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5));
        SDVariable w2 = sd.var("w2", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5));
        SDVariable gain = sd.var("gain", Nd4j.rand(DataType.DOUBLE, WIDTH).addi(0.5));
        SDVariable first = sd.identity(x.add(linear(sd, x, w1)));
        // a reshape of a reshape, as code that flattens and unflattens in separate helpers writes it
        SDVariable unflattened = sd.reshape(sd.reshape(first, -1, WIDTH), -1, SEQUENCE, WIDTH);
        SDVariable second = x.add(linear(sd, unflattened, w2));
        SDVariable centred = second.sub(second.mean(true, 2));
        SDVariable variance = centred.mul(centred).mean(true, 2);
        SDVariable normalised = centred.div(sd.math.sqrt(variance.add(1e-5))).mul(gain);
        SDVariable y = sd.placeHolder("y", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
        sd.math.square(normalised.sub(y)).sum().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    /** {@code input [batch, sequence, d] · weight [d, d]}, asking for the input's shape twice as two helpers would. */
    private static SDVariable linear(SameDiff sd, SDVariable input, SDVariable weight) {
        SDVariable flat = input.reshape(sd.concat(0, input.shape().get(SDIndex.interval(0, 2)).prod(true, 0),
                sd.constant(Nd4j.createFromArray((long) WIDTH))));
        return flat.mmul(weight).reshape(input.shape());
    }

    private record Run(TrainingReport report, INDArray weights, String output) {
    }

    private static Run train(String switchValue) {
        SameDiff sd = longWayGraph();
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(1e-2)).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
        MultiDataSet batch = new MultiDataSet(FEATURES, TARGETS);
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        String previous = System.getProperty(SameDiffTrainer.SIMPLIFY_GRAPHS);
        try {
            if (switchValue != null) {
                System.setProperty(SameDiffTrainer.SIMPLIFY_GRAPHS, switchValue);
            }
            ProgressListener progress = new ProgressListener(new PrintStream(printed, true, StandardCharsets.UTF_8), 1);
            TrainingReport report = SameDiffTrainer.fit(sd, config, new SingletonMultiDataSetIterator(batch), 3, progress);
            return new Run(report, Nd4j.concat(0, sd.getArrForVarName("w1"), sd.getArrForVarName("w2")),
                    printed.toString(StandardCharsets.UTF_8));
        } finally {
            if (previous == null) {
                System.clearProperty(SameDiffTrainer.SIMPLIFY_GRAPHS);
            } else {
                System.setProperty(SameDiffTrainer.SIMPLIFY_GRAPHS, previous);
            }
        }
    }

}
