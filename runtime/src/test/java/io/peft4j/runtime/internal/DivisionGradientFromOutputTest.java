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
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.DivBpOp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A broadcast division's gradients taken from its quotient equal SameDiff's {@code divide_bp} to
 * rounding, for a LayerNorm's division by its standard deviation {@code [batch, T, 1]}, a division by a
 * {@code [1, T, 1]} (broadcast along two axes) and one without broadcasting; a division by a trainable
 * variable or by a divisor of lower rank is left alone, and nothing is rewritten without the first batch.
 */
class DivisionGradientFromOutputTest {
    private static final int SEQUENCE = 3;
    private static final int WIDTH = 5;
    private static final INDArray FEATURES = features();

    private static INDArray features() {
        Nd4j.getRandom().setSeed(41);
        return Nd4j.rand(DataType.DOUBLE, 2, SEQUENCE, WIDTH).subi(0.5);
    }

    @Test
    void layerNormsDivisionByItsDeviation() {
        assertRewrittenAndEqual(1, (sd) -> {
            SDVariable centred = sd.getVariable("h").sub(sd.getVariable("h").mean(true, 2));
            SDVariable deviation = sd.math.sqrt(centred.mul(centred).mean(true, 2).add(1e-5));
            return centred.div(deviation).mul(sd.var("gain", Nd4j.rand(DataType.DOUBLE, WIDTH).addi(0.5)));
        });
    }

    @Test
    void divisionBroadcastAlongTwoAxes() {
        assertRewrittenAndEqual(1, (sd) -> {
            SDVariable h = sd.getVariable("h");
            return h.div(sd.math.exp(h.mean(true, 0).mean(true, 2)));
        });
    }

    @Test
    void aTrainableDivisorIsLeftAlone() {
        // its gradient is the variable's, which training reads by name
        assertRewrittenAndEqual(0, (sd) -> sd.getVariable("h").div(sd.var("scale", Nd4j.rand(DataType.DOUBLE, 1, SEQUENCE, 1).addi(0.5)))
                .add(sd.getVariable("h")));
    }

    @Test
    void divisionWithoutBroadcasting() {
        assertRewrittenAndEqual(1, (sd) -> sd.getVariable("h").div(sd.math.exp(sd.getVariable("h").mul(0.3))));
    }

    @Test
    void aDivisorOfLowerRankIsLeftAlone() {
        assertRewrittenAndEqual(0, (sd) -> sd.getVariable("h").div(sd.var("scale", Nd4j.rand(DataType.DOUBLE, WIDTH).addi(0.5))).mul(2.0));
    }

    @Test
    void nothingWithoutTheFirstBatch() {
        SameDiff sd = graph((s) -> s.getVariable("h").div(s.math.exp(s.getVariable("h").mul(0.3))));
        assertEquals(0, GradientGraphSimplifier.simplify(sd).divisionGradientsFromOutput());
        assertEquals(0, GradientGraphSimplifier.simplify(sd, null).divisionGradientsFromOutput());
    }

    private static void assertRewrittenAndEqual(int expectedRewrites, Function<SameDiff, SDVariable> division) {
        SameDiff original = graph(division);
        String[] trainable = original.variables().stream().filter(v -> v.getVariableType() == VariableType.VARIABLE)
                .map(SDVariable::name).toArray(String[]::new);
        Map<String, INDArray> expected = original.calculateGradients(Map.of("x", FEATURES), trainable);

        SameDiff rewritten = graph(division);
        GraphSimplification report = GradientGraphSimplifier.simplify(rewritten, () -> Map.of("x", FEATURES));
        Map<String, INDArray> actual = rewritten.calculateGradients(Map.of("x", FEATURES), trainable);

        assertEquals(expectedRewrites, report.divisionGradientsFromOutput(), report.describe());
        for (String name : trainable) {
            double scale = expected.get(name).amaxNumber().doubleValue();
            assertEquals(0.0, expected.get(name).sub(actual.get(name)).amaxNumber().doubleValue(), 1e-12 * scale, name);
        }
        if (expectedRewrites > 0) {
            SameDiff gradients = rewritten.getFunction("grad");
            for (SameDiffOp op : gradients.getOps().values()) {
                if (op.getOp() instanceof DivBpOp) {
                    for (String output : op.getOutputsOfOp()) {
                        assertTrue(gradients.getVariables().get(output).getInputsForOp().isEmpty(),
                                "divide_bp is still read: the step would compute it");
                    }
                }
            }
        }
    }

    /** {@code loss = Σ (division(h) · w2)²} with {@code h = x · w1} over {@code x [batch, sequence, d]}. */
    private static SameDiff graph(Function<SameDiff, SDVariable> division) {
        Nd4j.getRandom().setSeed(43);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5));
        SDVariable w2 = sd.var("w2", Nd4j.rand(DataType.DOUBLE, WIDTH, 2).subi(0.5));
        sd.reshape(sd.reshape(x, -1, WIDTH).mmul(w1), -1, SEQUENCE, WIDTH).rename("h");
        SDVariable divided = division.apply(sd);
        sd.math.square(sd.reshape(divided, -1, WIDTH).mmul(w2)).sum().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }
}
