package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Replayed steps run peft4j's vector kernels where they cover a call, and compute what they would
 * compute without them: a forward pass through an erf GELU, a LayerNorm written out, ND4J's gelu, a softmax and
 * biases agrees with SameDiff's to rounding (and bit for bit with the kernels off), and training with
 * and without them ends on the same parameters to rounding. The test JVM is started with the Vector
 * API module (the build's {@code peft4j.java.options}), so the kernels are in use here; the off switch
 * takes effect at the next recording.
 */
class ReplayKernelsTest {
    private static final int SEQUENCE = 8;
    private static final int WIDTH = 32;

    @Test
    void theTestJvmUsesPeft4jsKernelsUnlessSwitchedOff() {
        assertEquals("io.peft4j.runtime.internal.vector.VectorKernels", ReplayKernels.forThisProcess().getClass().getName(),
                "the tests run with --add-modules jdk.incubator.vector; without it no kernel test would test anything");
        assertNull(ReplayKernels.unavailableReason());
        withKernels(false, () -> {
            assertSame(ReplayKernels.NONE, ReplayKernels.forThisProcess());
            assertTrue(ReplayKernels.unavailableReason().contains("-Dpeft4j.vectorKernels=false"), ReplayKernels.unavailableReason());
            return null;
        });
    }

    @Test
    void aReplayedForwardPassWithKernelsGivesSameDiffsOutputsToRounding() {
        SameDiff sd = graph();
        Map<String, INDArray> placeholders = Map.of("x", Nd4j.randn(DataType.FLOAT, 4, SEQUENCE, WIDTH));
        INDArray expected = sd.output(placeholders, "out").get("out");

        RecordedStep withKernels = withKernels(true, () -> record(sd, placeholders));
        assertTrue(withKernels.kernelCalls() >= 8, withKernels.kernelCalls() + " of " + withKernels.callCount() + " calls in peft4j's kernels");
        INDArray replayed = withKernels.output(placeholders).get("out");
        assertTrue(expected.sub(replayed).amaxNumber().doubleValue() < 2e-6, "largest difference " + expected.sub(replayed).amaxNumber());

        RecordedStep withoutKernels = withKernels(false, () -> record(sd, placeholders));
        assertEquals(0, withoutKernels.kernelCalls());
        assertArrayEquals(expected.data().asFloat(), withoutKernels.output(placeholders).get("out").data().asFloat(), "libnd4j's bits");
    }

    @Test
    void trainingWithKernelsEndsWhereTrainingWithoutThemDoes() {
        INDArray[] withKernels = withKernels(true, ReplayKernelsTest::train);
        INDArray[] withoutKernels = withKernels(false, ReplayKernelsTest::train);
        double largest = 0;
        for (int i = 0; i < withKernels.length; i++) {
            double difference = withKernels[i].sub(withoutKernels[i]).amaxNumber().doubleValue();
            assertTrue(difference < 1e-5, "parameter " + i + " differs by " + difference);
            largest = Math.max(largest, difference);
        }
        assertTrue(largest > 0, "the kernels ran in the replayed steps (their exp and erf round differently from libnd4j's)");
        assertTrue(withKernels[0].sub(graph().getArrForVarName("w1")).amaxNumber().doubleValue() > 1e-3, "training moved the weights");
    }

    private static RecordedStep record(SameDiff sd, Map<String, INDArray> placeholders) {
        RecordedStep.Recorder recorder = new RecordedStep.Recorder(Operation.INFERENCE);
        sd.output(placeholders, List.of(recorder), "out");
        RecordedStep step = RecordedStep.build(sd, recorder, placeholders, Map.of(), List.of(), List.of("out"));
        assertNotNull(step, "the graph can be replayed");
        return step;
    }

    private static INDArray[] train() {
        return RecordedSteps.train(graph(), new long[] {4, SEQUENCE, WIDTH}, 6, 0.5, 2, 1e-2, "w1", "w2", "bias");
    }

    /**
     * {@code out = softmax(gelu(LayerNorm(gelu_erf(x · w1 + bias))) · w2)} over {@code x [b, 8, 32]}
     * (the second GELU ND4J's sigmoid form, which training with the kernels keeps as it is), and
     * {@code loss = mean((out − y)²)}.
     */
    private static SameDiff graph() {
        Nd4j.getRandom().setSeed(17);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.2));
        SDVariable w2 = sd.var("w2", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.2));
        SDVariable bias = sd.var("bias", Nd4j.randn(DataType.FLOAT, WIDTH).muli(0.1));
        SDVariable projected = sd.reshape(sd.reshape(x, -1, WIDTH).mmul(w1), -1, SEQUENCE, WIDTH).add(bias);
        SDVariable gelu = projected.mul(0.5).mul(sd.math.erf(projected.div(Math.sqrt(2))).add(1.0));
        SDVariable centred = gelu.sub(gelu.mean(true, 2));
        SDVariable normalised = centred.div(sd.math.sqrt(centred.mul(centred).mean(true, 2).add(1e-5)));
        SDVariable logits = sd.reshape(sd.reshape(sd.nn.gelu(normalised), -1, WIDTH).mmul(w2), -1, SEQUENCE, WIDTH);
        SDVariable out = sd.nn.softmax(logits, 2).rename("out");
        sd.math.square(out.sub(y)).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    private static <T> T withKernels(boolean on, Supplier<T> body) {
        String previous = System.getProperty(ReplayKernels.PROPERTY);
        System.setProperty(ReplayKernels.PROPERTY, Boolean.toString(on));
        try {
            return body.get();
        } finally {
            if (previous == null) {
                System.clearProperty(ReplayKernels.PROPERTY);
            } else {
                System.setProperty(ReplayKernels.PROPERTY, previous);
            }
        }
    }
}
