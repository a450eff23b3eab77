package io.peft4j.runtime.internal;

import static io.peft4j.runtime.internal.RecordedSteps.assertClose;
import static io.peft4j.runtime.internal.RecordedSteps.record;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * BERT's exact GELU written out ({@code (x · 0.5) · (erf(x / √2) + 1)}, as the MiniLM sample writes
 * it) runs as one fused pass in a replayed forward pass, and with its gradient as two in a replayed
 * gradient computation; the values stay SameDiff's to rounding (peft4j's erf is within 2e-7 of
 * libnd4j's). The spelling with {@code x · (1/√2)} is recognised too; one with the 0.5 applied last
 * is left to the op-by-op kernels, and so is every group with {@code -Dpeft4j.fusedKernels=false}. The
 * test JVM has peft4j's kernels (see {@link ReplayKernelsTest}).
 */
class ExactGeluFusionTest {
    private static final int SEQUENCE = 8;
    private static final int WIDTH = 64;

    @Test
    void theForwardGeluRunsAsOnePass() {
        for (boolean byReciprocal : new boolean[] {false, true}) {
            SameDiff sd = graph(Spelling.of(byReciprocal));
            Map<String, INDArray> placeholders = placeholders();
            INDArray expected = sd.output(placeholders, "out").get("out");
            RecordedStep step = record(sd, placeholders, "out");
            assertEquals(5, step.fusedCalls(), "0.5 x, x / √2, erf, + 1 and the product");
            assertClose(expected, step.output(placeholders).get("out"), 2e-6, "out");
            Map<String, INDArray> other = placeholders();
            assertClose(sd.output(other, "out").get("out"), step.output(other).get("out"), 2e-6, "out, another batch");
        }
    }

    @Test
    void theGeluAndItsGradientRunAsTwoPasses() {
        SameDiff sd = graph(Spelling.DIVIDED);
        GradientGraphSimplifier.simplify(sd); // as training does: SameDiff's own graph has an identity on the way
        Map<String, INDArray> placeholders = placeholders();
        Map<String, INDArray> expected = sd.calculateGradients(placeholders, "w1", "w2");
        SameDiff gradients = sd.getFunction("grad");
        RecordedStep step = record(gradients, placeholders, "w1-grad", "w2-grad");
        assertEquals(8 + 6, step.fusedCalls(), "the forward group with SameDiff's e^-(x/√2)², and the six ops of its gradient");
        Map<String, INDArray> replayed = step.output(placeholders);
        assertClose(expected.get("w1"), replayed.get("w1-grad"), 1e-5, "w1's gradient");
        assertClose(expected.get("w2"), replayed.get("w2-grad"), 1e-5, "w2's gradient");
    }

    @Test
    void theSwitchKeepsEveryOpOnItsOwnKernel() {
        SameDiff sd = graph(Spelling.DIVIDED);
        GradientGraphSimplifier.simplify(sd);
        Map<String, INDArray> placeholders = placeholders();
        RecordedStep fused = record(sd.getFunction("grad"), placeholders, "w1-grad");
        RecordedStep opByOp = RecordedSteps.withProperty(ReplayKernels.FUSION_PROPERTY, "false",
                () -> record(sd.getFunction("grad"), placeholders, "w1-grad"));
        assertEquals(0, opByOp.fusedCalls());
        assertTrue(opByOp.kernelCalls() > 0, "the op-by-op kernels still run");
        assertClose(opByOp.output(placeholders).get("w1-grad"), fused.output(placeholders).get("w1-grad"), 1e-6,
                "the same arithmetic (an exponential may round differently in another JIT tier)");
    }

    @Test
    void aGeluWithTheHalfAppliedLastIsNotFused() {
        SameDiff sd = graph(Spelling.HALF_LAST);
        Map<String, INDArray> placeholders = placeholders();
        RecordedStep step = record(sd, placeholders, "out");
        assertEquals(0, step.fusedCalls());
        assertClose(sd.output(placeholders, "out").get("out"), step.output(placeholders).get("out"), 2e-6, "out");
    }

    private enum Spelling {
        DIVIDED, BY_RECIPROCAL, HALF_LAST;

        static Spelling of(boolean byReciprocal) {
            return byReciprocal ? BY_RECIPROCAL : DIVIDED;
        }
    }

    private static Map<String, INDArray> placeholders() {
        INDArray x = Nd4j.randn(DataType.FLOAT, 4, SEQUENCE, WIDTH);
        return Map.of("x", x, "y", x.mul(0.5));
    }

    /** {@code out = gelu_erf(x · w1) · w2} over {@code x [4, 8, 64]}, and {@code loss = mean((out − y)²)}. */
    private static SameDiff graph(Spelling spelling) {
        Nd4j.getRandom().setSeed(41);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.3));
        SDVariable w2 = sd.var("w2", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.3));
        SDVariable projected = sd.reshape(sd.reshape(x, -1, WIDTH).mmul(w1), -1, SEQUENCE, WIDTH);
        SDVariable gelu = switch (spelling) {
            case DIVIDED -> projected.mul(0.5).mul(sd.math.erf(projected.div(Math.sqrt(2.0))).add(1.0));
            case BY_RECIPROCAL -> projected.mul(0.5).mul(sd.math.erf(projected.mul(1 / Math.sqrt(2.0))).add(1.0));
            case HALF_LAST -> projected.mul(sd.math.erf(projected.div(Math.sqrt(2.0))).add(1.0)).mul(0.5);
        };
        SDVariable out = sd.reshape(sd.reshape(gelu, -1, WIDTH).mmul(w2), -1, SEQUENCE, WIDTH).rename("out");
        sd.math.square(out.sub(y)).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }
}
