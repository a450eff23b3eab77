package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.SameDiffTrainer;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Attention's batched products ({@code matmul} of {@code [batch, heads, sequence, size]} heads split
 * by a permuted view, and their {@code matmul_bp}) run in peft4j's kernels in replayed passes and
 * steps, unless {@link SameDiffTrainer#PRODUCT_KERNELS} is {@code false}, and compute what libnd4j
 * computes to rounding.
 */
class AttentionProductsReplayTest {
    private static final int SEQUENCE = 12;
    private static final int WIDTH = 32;
    private static final int HEADS = 2;

    @Test
    void aReplayedForwardPassRunsBothProductsInTheKernels() {
        SameDiff sd = graph();
        Map<String, INDArray> placeholders = Map.of("x", Nd4j.randn(DataType.FLOAT, 3, SEQUENCE, WIDTH));
        INDArray expected = sd.output(placeholders, "out").get("out");
        // op by op: fused, the two products and what lies between them are one pass (ScaledDotProductAttentionFusionTest)
        RecordedStep inKernels = RecordedSteps.withProperty(ReplayKernels.FUSION_PROPERTY, "false", () -> RecordedSteps.withProperty(
                SameDiffTrainer.PRODUCT_KERNELS, "true", () -> RecordedSteps.record(sd, placeholders, "out")));
        RecordedStep inLibnd4j = RecordedSteps.withProperty(ReplayKernels.FUSION_PROPERTY, "false", () -> RecordedSteps.withProperty(
                SameDiffTrainer.PRODUCT_KERNELS, "false", () -> RecordedSteps.record(sd, placeholders, "out")));
        assertEquals(2, inKernels.kernelCalls() - inLibnd4j.kernelCalls(), "the scores' and the context's products");
        RecordedSteps.assertClose(expected, inKernels.output(placeholders).get("out"), 2e-6, "output with the products in the kernels");
        RecordedSteps.assertClose(expected, inLibnd4j.output(placeholders).get("out"), 2e-6, "output with the products in libnd4j");
    }

    @Test
    void trainingWithTheProductKernelsEndsWhereLibnd4jsProductsDo() {
        INDArray[] inKernels = RecordedSteps.withProperty(SameDiffTrainer.PRODUCT_KERNELS, "true", AttentionProductsReplayTest::train);
        INDArray[] inLibnd4j = RecordedSteps.withProperty(SameDiffTrainer.PRODUCT_KERNELS, "false", AttentionProductsReplayTest::train);
        double largest = 0;
        for (int i = 0; i < inKernels.length; i++) {
            double difference = inKernels[i].sub(inLibnd4j[i]).amaxNumber().doubleValue();
            assertTrue(difference < 1e-5, "parameter " + i + " differs by " + difference);
            largest = Math.max(largest, difference);
        }
        assertTrue(largest > 0, "the product kernels ran in the replayed steps (their sums round differently from libnd4j's)");
        assertTrue(inKernels[0].sub(graph().getArrForVarName("query")).amaxNumber().doubleValue() > 1e-3, "training moved the weights");
    }

    private static INDArray[] train() {
        return RecordedSteps.train(graph(), new long[] {3, SEQUENCE, WIDTH}, 6, 0.5, 2, 1e-2, "query", "key", "value");
    }

    /**
     * Self-attention over {@code x [b, 12, 32]} with two heads: {@code out = softmax(QKᵀ / 4) V}, heads
     * merged back, and {@code loss = mean((out − y)²)}.
     */
    private static SameDiff graph() {
        Nd4j.getRandom().setSeed(23);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable q = heads(sd, x, sd.var("query", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.2)));
        SDVariable k = heads(sd, x, sd.var("key", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.2)));
        SDVariable v = heads(sd, x, sd.var("value", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.2)));
        SDVariable scores = sd.mmul(q, k, false, true, false).div(Math.sqrt((double) WIDTH / HEADS));
        SDVariable context = sd.mmul(sd.nn.softmax(scores, 3), v).permute(0, 2, 1, 3);
        SDVariable out = sd.reshape(context, -1, SEQUENCE, WIDTH).rename("out");
        sd.math.square(out.sub(y)).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    /** {@code x · w} split into heads: {@code [b, heads, sequence, size]}, a permuted view. */
    private static SDVariable heads(SameDiff sd, SDVariable x, SDVariable w) {
        SDVariable projected = sd.reshape(sd.reshape(x, -1, WIDTH).mmul(w), -1, SEQUENCE, HEADS, WIDTH / HEADS);
        return projected.permute(0, 2, 1, 3);
    }
}
