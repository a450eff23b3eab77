package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.GraphSimplification;
import java.util.Map;
import java.util.function.Function;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.AddBpOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.MulBpOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.SubBpOp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A broadcast sum's, difference's or product's gradients from element-wise ops and one sum equal
 * libnd4j's {@code add_bp}, {@code subtract_bp} and {@code multiply_bp} to rounding: a trainable bias
 * {@code [d]} of lower rank (its gradient is the bias's own, read by training), a gain
 * {@code [1, 1, d]}, a subtrahend and a minuend broadcast along the middle axis, a bias read twice.
 * A sum of operands of one shape (a residual connection) passes its gradient on without
 * {@code add_bp}, except to a trainable operand; products of one shape are left to libnd4j.
 */
class BroadcastOperandGradientsTest {
    private static final int SEQUENCE = 3;
    private static final int WIDTH = 5;
    private static final INDArray FEATURES = features();

    private static INDArray features() {
        Nd4j.getRandom().setSeed(29);
        return Nd4j.rand(DataType.DOUBLE, 2, SEQUENCE, WIDTH).subi(0.5);
    }

    @Test
    void aTrainableBiasOfLowerRank() {
        assertRewrittenAndEqual(1, sd -> sd.getVariable("h").add(parameter(sd, "bias", WIDTH)));
    }

    @Test
    void aGainOfTheSameRank() {
        assertRewrittenAndEqual(1, sd -> sd.getVariable("h").mul(parameter(sd, "gain", 1, 1, WIDTH)));
    }

    @Test
    void aBroadcastSubtrahendAndMinuend() {
        // the two differences are then added: a sum of one shape, passed on
        assertRewrittenAndEqual(2, 1, 3, sd -> sd.getVariable("h").sub(parameter(sd, "shift", 1, SEQUENCE, 1))
                .add(parameter(sd, "offset", SEQUENCE, 1).sub(sd.getVariable("h")).mul(0.5)));
    }

    @Test
    void aBroadcastProductOnTheLeftAndABiasReadTwice() {
        assertRewrittenAndEqual(3, sd -> {
            SDVariable bias = parameter(sd, "bias", WIDTH);
            return parameter(sd, "scale", SEQUENCE, 1).mul(sd.getVariable("h")).add(bias).mul(sd.getVariable("h").add(bias));
        });
    }

    @Test
    void aResidualSumPassesItsGradientOn() {
        assertRewrittenAndEqual(0, 1, 1, sd -> sd.getVariable("h").add(sd.math.tanh(sd.getVariable("h"))));
    }

    @Test
    void aTrainableOperandOfTheSameShapeKeepsItsOwnGradient() {
        // h's gradient is passed on; the parameter's stays add_bp's output, which its updater changes in place
        assertRewrittenAndEqual(0, 1, 0, sd -> sd.getVariable("h").add(parameter(sd, "shift", 2, SEQUENCE, WIDTH)));
    }

    @Test
    void operandsOfOneShapeAreLeftAlone() {
        assertRewrittenAndEqual(0, sd -> sd.getVariable("h").mul(sd.math.tanh(sd.getVariable("h"))));
    }

    private static SDVariable parameter(SameDiff sd, String name, long... shape) {
        return sd.var(name, Nd4j.rand(DataType.DOUBLE, shape).addi(0.5));
    }

    private static void assertRewrittenAndEqual(int expectedRewrites, Function<SameDiff, SDVariable> layer) {
        assertRewrittenAndEqual(expectedRewrites, 0, expectedRewrites, layer);
    }

    /**
     * {@code summed} broadcast gradients rewritten, {@code passedOn} sums' gradients passed on, and
     * {@code removed} backward ops no longer needed; gradients equal.
     */
    private static void assertRewrittenAndEqual(int summed, int passedOn, int removed, Function<SameDiff, SDVariable> layer) {
        SameDiff original = graph(layer);
        String[] trainable = original.variables().stream().filter(v -> v.getVariableType() == VariableType.VARIABLE)
                .map(SDVariable::name).toArray(String[]::new);
        Map<String, INDArray> expected = original.calculateGradients(Map.of("x", FEATURES), trainable);

        SameDiff rewritten = graph(layer);
        GraphSimplification report = GradientGraphSimplifier.simplify(rewritten, () -> Map.of("x", FEATURES));
        Map<String, INDArray> actual = rewritten.calculateGradients(Map.of("x", FEATURES), trainable);

        assertEquals(summed, report.broadcastGradientsSummed(), report.describe());
        assertEquals(passedOn, report.sumGradientsPassedOn(), report.describe());
        for (String name : trainable) {
            assertTrue(java.util.Arrays.equals(expected.get(name).shape(), actual.get(name).shape()), name);
            double scale = expected.get(name).amaxNumber().doubleValue();
            assertEquals(0.0, expected.get(name).sub(actual.get(name)).amaxNumber().doubleValue(), 1e-12 * scale, name);
        }
        assertEquals(neededBackwardOps(original.getFunction("grad")) - removed, neededBackwardOps(rewritten.getFunction("grad")),
                "a rewritten backward op is still needed: the step would compute it");
    }

    /** The {@code add_bp}, {@code subtract_bp} and {@code multiply_bp} ops whose outputs are read or trained. */
    private static long neededBackwardOps(SameDiff gradients) {
        return gradients.getOps().values().stream()
                .filter(op -> op.getOp() instanceof AddBpOp || op.getOp() instanceof SubBpOp || op.getOp() instanceof MulBpOp)
                .filter(op -> op.getOutputsOfOp().stream().anyMatch(output -> isNeeded(gradients, output)))
                .count();
    }

    private static boolean isNeeded(SameDiff gradients, String output) {
        var readers = gradients.getVariables().get(output).getInputsForOp();
        boolean trained = gradients.getVariables().values().stream()
                .anyMatch(v -> v.getVariable().getVariableType() == VariableType.VARIABLE && v.getGradient() != null
                        && v.getGradient().name().equals(output));
        return trained || readers != null && !readers.isEmpty();
    }

    /** {@code loss = Σ (layer(h) · w2)²} with {@code h = x · w1} over {@code x [batch, sequence, d]}. */
    private static SameDiff graph(Function<SameDiff, SDVariable> layer) {
        Nd4j.getRandom().setSeed(31);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5));
        SDVariable w2 = sd.var("w2", Nd4j.rand(DataType.DOUBLE, WIDTH, 2).subi(0.5));
        sd.reshape(sd.reshape(x, -1, WIDTH).mmul(w1), -1, SEQUENCE, WIDTH).rename("h");
        SDVariable out = layer.apply(sd);
        SDVariable flat = sd.reshape(out, -1, WIDTH).mmul(w2);
        flat.mul(flat).sum().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }
}
