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
 * Attention written out op by op ({@code softmax(QKᵀ / √d + mask) V}, as the samples' transformer,
 * MiniLM and GPT write it) runs as one fused pass in a replayed forward pass, and in a replayed
 * gradient computation as two, the forward one writing the probabilities that the backward one
 * ({@link AttentionGradient}) reads: bit for bit what the op-by-op replay computes
 * ({@code -Dpeft4j.fusedKernels=false}), and SameDiff's values to rounding. The sequence (70) spans
 * two blocks of rows, the second not a multiple of four, and neither it nor the head size (20) is a
 * multiple of the vector length. The test JVM has peft4j's kernels (see {@link ReplayKernelsTest}).
 */
class ScaledDotProductAttentionFusionTest {
    private static final int BATCH = 3;
    private static final int SEQUENCE = 70;
    private static final int HEADS = 2;
    private static final int HEAD_SIZE = 20;
    private static final int WIDTH = HEADS * HEAD_SIZE;
    /**
     * The gradient's calls: the values' product's {@code matmul_bp}, the softmax gradient's product,
     * sum, difference and product, the mask's {@code add_bp}, the scaling, the scores' {@code matmul_bp}.
     */
    private static final int GRADIENT_CALLS = 8;

    @Test
    void theForwardAttentionRunsAsOnePassBitForBit() {
        for (Spelling spelling : List.of(Spelling.PADDING_MASK, Spelling.CAUSAL_MASK, Spelling.MULTIPLIED_NO_MASK, Spelling.UNSCALED)) {
            SameDiff sd = graph(spelling);
            Map<String, INDArray> placeholders = placeholders();
            RecordedStep fused = record(sd, placeholders, "out");
            assertEquals(spelling.calls, fused.fusedCalls(), spelling.name());
            INDArray replayed = fused.output(placeholders).get("out");
            assertClose(sd.output(placeholders, "out").get("out"), replayed, 2e-6, spelling.name());
            RecordedStep opByOp = withoutFusion(() -> record(sd, placeholders, "out"));
            assertEquals(0, opByOp.fusedCalls());
            assertBitwise(opByOp.output(placeholders).get("out"), replayed, spelling.name() + " against the op-by-op replay");
        }
    }

    @Test
    void inAGradientBothPassesRunFusedBitForBit() {
        SameDiff sd = graph(Spelling.PADDING_MASK);
        GradientGraphSimplifier.simplify(sd);
        Map<String, INDArray> placeholders = placeholders();
        String[] parameters = {"wq", "wk", "wv"};
        Map<String, INDArray> expected = sd.calculateGradients(placeholders, parameters);
        SameDiff gradients = sd.getFunction("grad");
        String[] outputs = {"wq-grad", "wk-grad", "wv-grad"};
        RecordedStep fused = record(gradients, placeholders, outputs);
        assertEquals(Spelling.PADDING_MASK.calls + GRADIENT_CALLS, fused.fusedCalls(), "the forward group and the gradient's");
        Map<String, INDArray> replayed = fused.output(placeholders);
        for (String name : parameters) {
            assertClose(expected.get(name), replayed.get(name + "-grad"), 1e-5, name + "'s gradient");
        }
        Map<String, INDArray> opByOp = withoutFusion(() -> record(gradients, placeholders, outputs)).output(placeholders);
        for (String output : outputs) {
            assertBitwise(opByOp.get(output), replayed.get(output), output + " against the op-by-op replay");
        }
    }

    @Test
    void withoutTheKeysGradientTheQueriesAloneComeFromTheFusedPass() {
        SameDiff sd = graph(Spelling.PADDING_MASK, true);
        assertEquals(3, MatMulGradientPruner.prune(sd),
                "the scores' matmul_bp becomes matmul(dS, K), dQ alone; the projections of x keep only their weights' gradients");
        GradientGraphSimplifier.simplify(sd);
        Map<String, INDArray> placeholders = placeholders();
        String[] parameters = {"wq", "wv"};
        Map<String, INDArray> expected = sd.calculateGradients(placeholders, parameters);
        SameDiff gradients = sd.getFunction("grad");
        String[] outputs = {"wq-grad", "wv-grad"};
        RecordedStep fused = record(gradients, placeholders, outputs);
        assertEquals(Spelling.PADDING_MASK.calls + GRADIENT_CALLS, fused.fusedCalls(), "the forward group and the gradient's");
        Map<String, INDArray> replayed = fused.output(placeholders);
        Map<String, INDArray> opByOp = withoutFusion(() -> record(gradients, placeholders, outputs)).output(placeholders);
        for (String name : parameters) {
            assertClose(expected.get(name), replayed.get(name + "-grad"), 1e-5, name + "'s gradient");
            assertBitwise(opByOp.get(name + "-grad"), replayed.get(name + "-grad"), name + "'s gradient against the op-by-op replay");
        }
    }

    @Test
    void otherSpellingsAreLeftOpByOp() {
        for (Spelling spelling : List.of(Spelling.SOFTMAX_OVER_QUERIES, Spelling.PROBABILITIES_TRANSPOSED)) {
            SameDiff sd = graph(spelling);
            Map<String, INDArray> placeholders = placeholders();
            RecordedStep step = record(sd, placeholders, "out");
            assertEquals(0, step.fusedCalls(), spelling.name());
            assertClose(sd.output(placeholders, "out").get("out"), step.output(placeholders).get("out"), 2e-6, spelling.name());
        }
    }

    @Test
    void withProductKernelsOffAttentionStaysOpByOp() {
        SameDiff sd = graph(Spelling.PADDING_MASK);
        Map<String, INDArray> placeholders = placeholders();
        RecordedStep step = RecordedSteps.withProperty(ReplayKernels.PRODUCT_PROPERTY, "false", () -> record(sd, placeholders, "out"));
        assertEquals(0, step.fusedCalls());
        assertClose(sd.output(placeholders, "out").get("out"), step.output(placeholders).get("out"), 2e-6, "out");
    }

    /** How a graph writes attention, and how many calls its fused group replaces. */
    private enum Spelling {
        PADDING_MASK(5), CAUSAL_MASK(5), MULTIPLIED_NO_MASK(4), UNSCALED(3), SOFTMAX_OVER_QUERIES(0), PROBABILITIES_TRANSPOSED(0);

        final int calls;

        Spelling(int calls) {
            this.calls = calls;
        }
    }

    private static <T> T withoutFusion(Supplier<T> action) {
        return RecordedSteps.withProperty(ReplayKernels.FUSION_PROPERTY, "false", action);
    }

    /** {@code x [3, 70, 40]}, the target {@code y}, and an additive padding mask {@code [3, 1, 1, 70]} hiding each sequence's last positions. */
    private static Map<String, INDArray> placeholders() {
        INDArray x = Nd4j.randn(DataType.FLOAT, BATCH, SEQUENCE, WIDTH);
        INDArray mask = Nd4j.zeros(DataType.FLOAT, BATCH, 1, 1, SEQUENCE);
        for (int b = 0; b < BATCH; b++) {
            for (int t = SEQUENCE - 5 * b; t < SEQUENCE; t++) {
                mask.putScalar(new long[] {b, 0, 0, t}, -10_000f);
            }
        }
        return Map.of("x", x, "y", x.mul(0.5), "mask", mask);
    }

    private static void assertBitwise(INDArray expected, INDArray actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what);
        assertArrayEquals(expected.data().asFloat(), actual.data().asFloat(), what);
    }

    /** Self-attention over {@code x [3, 70, 40]} with two heads, {@code out = attention(x) · wo}, {@code loss = mean((out − y)²)}. */
    private static SameDiff graph(Spelling spelling) {
        return graph(spelling, false);
    }

    /** As {@link #graph(Spelling)}, the keys' projection a constant when {@code frozenKeys}: nothing then needs {@code dK}. */
    private static SameDiff graph(Spelling spelling, boolean frozenKeys) {
        Nd4j.getRandom().setSeed(47);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable mask = sd.placeHolder("mask", DataType.FLOAT, -1, 1, 1, SEQUENCE);
        SDVariable q = heads(sd, x, "wq", false);
        SDVariable k = heads(sd, x, "wk", frozenKeys);
        SDVariable v = heads(sd, x, "wv", false);
        SDVariable wo = sd.var("wo", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.3));
        SDVariable scores = sd.mmul(q, k, false, true, false);
        SDVariable weights = switch (spelling) {
            case PADDING_MASK, PROBABILITIES_TRANSPOSED -> sd.nn.softmax(scores.div(Math.sqrt(HEAD_SIZE)).add(mask), 3);
            case CAUSAL_MASK -> sd.nn.softmax(scores.div(Math.sqrt(HEAD_SIZE)).add(sd.constant(causalMask())), 3);
            case MULTIPLIED_NO_MASK -> sd.nn.softmax(scores.mul(1 / Math.sqrt(HEAD_SIZE)), 3);
            case UNSCALED -> sd.nn.softmax(scores, 3);
            case SOFTMAX_OVER_QUERIES -> sd.nn.softmax(scores.div(Math.sqrt(HEAD_SIZE)).add(mask), 2);
        };
        SDVariable context = spelling == Spelling.PROBABILITIES_TRANSPOSED
                ? sd.mmul(sd.permute(weights, 0, 1, 3, 2), v, true, false, false) : sd.mmul(weights, v);
        SDVariable merged = sd.reshape(context.permute(0, 2, 1, 3), -1, WIDTH);
        SDVariable out = sd.reshape(merged.mmul(wo), -1, SEQUENCE, WIDTH).rename("out");
        sd.math.square(out.sub(y)).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    /** {@code [3, 70, 40] · w → [3, 2, 70, 20]}. */
    private static SDVariable heads(SameDiff sd, SDVariable x, String name, boolean frozen) {
        INDArray weights = Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.3);
        SDVariable w = frozen ? sd.constant(name, weights) : sd.var(name, weights);
        return sd.reshape(sd.reshape(x, -1, WIDTH).mmul(w), -1, SEQUENCE, HEADS, HEAD_SIZE).permute(0, 2, 1, 3);
    }

    /** {@code [70, 70]}: 0 where a query may see a key (at or before it), −10,000 after it. */
    private static INDArray causalMask() {
        INDArray mask = Nd4j.zeros(DataType.FLOAT, SEQUENCE, SEQUENCE);
        for (int query = 0; query < SEQUENCE; query++) {
            for (int key = query + 1; key < SEQUENCE; key++) {
                mask.putScalar(query, key, -10_000f);
            }
        }
        return mask;
    }
}
