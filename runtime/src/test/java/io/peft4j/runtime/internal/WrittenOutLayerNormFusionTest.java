package io.peft4j.runtime.internal;

import static io.peft4j.runtime.internal.RecordedSteps.assertClose;
import static io.peft4j.runtime.internal.RecordedSteps.record;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A LayerNorm written out op by op over the last axis ({@code (x − mean) / √(mean((x − mean)²) + ε)
 * · gain + bias}, as the samples' transformer, GPT and MiniLM write it) runs as one fused pass in a
 * replayed forward pass and in the forward part of a replayed gradient computation, with the values
 * the gradient ops read written out: bit for bit what the op-by-op replay computes
 * ({@code -Dpeft4j.fusedKernels=false}), and SameDiff's values to rounding. A LayerNorm over another
 * axis, or one whose ε is added after the square root, is left op by op. The test JVM has peft4j's
 * kernels (see {@link ReplayKernelsTest}).
 */
class WrittenOutLayerNormFusionTest {
    private static final int SEQUENCE = 8;
    private static final int WIDTH = 40; // not a multiple of the vector length: the rows have tails

    @Test
    void theForwardLayerNormRunsAsOnePassBitForBit() {
        SameDiff sd = graph(Spelling.STANDARD);
        Map<String, INDArray> placeholders = placeholders();
        RecordedStep fused = record(sd, placeholders, "out");
        assertEquals(9, fused.fusedCalls(), "two means, the centring, the square, ε, the root, the division, the gain and the bias");
        INDArray replayed = fused.output(placeholders).get("out");
        assertClose(sd.output(placeholders, "out").get("out"), replayed, 2e-6, "out");
        RecordedStep opByOp = withoutFusion(() -> record(sd, placeholders, "out"));
        assertEquals(0, opByOp.fusedCalls());
        assertBitwise(opByOp.output(placeholders).get("out"), replayed, "out against the op-by-op replay");
    }

    @Test
    void inAGradientTheForwardPassWritesWhatTheGradientReads() {
        SameDiff sd = graph(Spelling.STANDARD);
        GradientGraphSimplifier.simplify(sd);
        Map<String, INDArray> placeholders = placeholders();
        Map<String, INDArray> expected = sd.calculateGradients(placeholders, "w1", "gain", "bias");
        SameDiff gradients = sd.getFunction("grad");
        String[] outputs = {"w1-grad", "gain-grad", "bias-grad"};
        RecordedStep fused = record(gradients, placeholders, outputs);
        assertEquals(9, fused.fusedCalls(), "the forward group");
        Map<String, INDArray> replayed = fused.output(placeholders);
        for (String name : List.of("w1", "gain", "bias")) {
            assertClose(expected.get(name), replayed.get(name + "-grad"), 1e-5, name + "'s gradient");
        }
        Map<String, INDArray> opByOp = withoutFusion(() -> record(gradients, placeholders, outputs)).output(placeholders);
        for (String output : outputs) {
            assertBitwise(opByOp.get(output), replayed.get(output), output + " against the op-by-op replay");
        }
    }

    @Test
    void otherSpellingsAreLeftOpByOp() {
        for (Spelling spelling : List.of(Spelling.FIRST_AXIS, Spelling.EPSILON_AFTER_ROOT)) {
            SameDiff sd = graph(spelling);
            Map<String, INDArray> placeholders = placeholders();
            RecordedStep step = record(sd, placeholders, "out");
            assertEquals(0, step.fusedCalls(), spelling.name());
            assertClose(sd.output(placeholders, "out").get("out"), step.output(placeholders).get("out"), 2e-6, spelling.name());
        }
    }

    private enum Spelling { STANDARD, FIRST_AXIS, EPSILON_AFTER_ROOT }

    private static <T> T withoutFusion(Supplier<T> action) {
        return RecordedSteps.withProperty(ReplayKernels.FUSION_PROPERTY, "false", action);
    }

    private static Map<String, INDArray> placeholders() {
        INDArray x = Nd4j.randn(DataType.FLOAT, 4, SEQUENCE, WIDTH);
        return Map.of("x", x, "y", x.mul(0.5));
    }

    private static void assertBitwise(INDArray expected, INDArray actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what);
        assertArrayEquals(expected.data().asFloat(), actual.data().asFloat(), what);
    }

    /** {@code out = layerNorm(x · w1) · w2} over {@code x [4, 8, 40]}, and {@code loss = mean((out − y)²)}. */
    private static SameDiff graph(Spelling spelling) {
        Nd4j.getRandom().setSeed(43);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.3));
        SDVariable w2 = sd.var("w2", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.3));
        SDVariable gain = sd.var("gain", Nd4j.rand(DataType.FLOAT, WIDTH).addi(0.5));
        SDVariable bias = sd.var("bias", Nd4j.randn(DataType.FLOAT, WIDTH).muli(0.1));
        SDVariable projected = sd.reshape(sd.reshape(x, -1, WIDTH).mmul(w1), -1, SEQUENCE, WIDTH);
        int axis = spelling == Spelling.FIRST_AXIS ? 1 : 2;
        SDVariable centred = projected.sub(projected.mean(true, axis));
        SDVariable variance = centred.mul(centred).mean(true, axis);
        SDVariable deviation = spelling == Spelling.EPSILON_AFTER_ROOT ? sd.math.sqrt(variance).add(1e-5) : sd.math.sqrt(variance.add(1e-5));
        SDVariable normalised = spelling == Spelling.FIRST_AXIS ? centred.div(deviation)
                : centred.div(deviation).mul(gain).add(bias);
        SDVariable out = sd.reshape(sd.reshape(normalised, -1, WIDTH).mmul(w2), -1, SEQUENCE, WIDTH).rename("out");
        sd.math.square(out.sub(y)).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }
}
