package io.peft4j.runtime.internal;

import static io.peft4j.runtime.internal.RecordedSteps.assertClose;
import static io.peft4j.runtime.internal.RecordedSteps.record;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import java.util.Map;
import java.util.function.Supplier;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A LoRA branch written as the runtime writes it, {@code y + reshape(((h · A) · s) · B)}, runs its
 * second product and the sum as one pass in a replayed forward pass, and in a replayed gradient the
 * branch's share of {@code h}'s gradient, {@code dz · Aᵀ}, is added to the base layer's in the pass
 * that computes {@code A}'s gradient: bit for bit what the op-by-op replay computes
 * ({@code -Dpeft4j.fusedKernels=false}), and SameDiff's values to rounding. 210 rows (not a multiple
 * of eight) and rank 5; products without a short side, or with product kernels off, stay op by op.
 */
class ProductSumFusionTest {
    private static final int BATCH = 3;
    private static final int SEQUENCE = 70;
    private static final int WIDTH = 40;
    private static final int RANK = 5;

    @Test
    void theBranchAndTheSumRunAsOnePassBitForBit() {
        SameDiff sd = graph(RANK);
        Map<String, INDArray> placeholders = placeholders();
        RecordedStep fused = record(sd, placeholders, "out");
        assertEquals(2, fused.fusedCalls(), "z · B and the sum");
        INDArray replayed = fused.output(placeholders).get("out");
        assertClose(sd.output(placeholders, "out").get("out"), replayed, 2e-6, "out");
        RecordedStep opByOp = withoutFusion(() -> record(sd, placeholders, "out"));
        assertEquals(0, opByOp.fusedCalls());
        assertBitwise(opByOp.output(placeholders).get("out"), replayed, "against the op-by-op replay");
    }

    @Test
    void inAGradientTheBranchsShareIsAddedInThePass() {
        SameDiff sd = graph(RANK);
        Map<String, INDArray> placeholders = placeholders();
        // as training simplifies it: the sum's add_bp passes its gradient on, so the forward sum's operands have no other reader
        GradientGraphSimplifier.simplify(sd, () -> placeholders, true);
        String[] parameters = {"w1", "a", "b"};
        Map<String, INDArray> expected = sd.calculateGradients(placeholders, parameters);
        SameDiff gradients = sd.getFunction("grad");
        String[] outputs = {"w1-grad", "a-grad", "b-grad"};
        RecordedStep fused = record(gradients, placeholders, outputs);
        assertEquals(2 + 2, fused.fusedCalls(), "the forward group, and matmul_bp(h, A, dz) with the sum of h's gradients");
        Map<String, INDArray> replayed = fused.output(placeholders);
        Map<String, INDArray> opByOp = withoutFusion(() -> record(gradients, placeholders, outputs)).output(placeholders);
        for (String name : parameters) {
            assertClose(expected.get(name), replayed.get(name + "-grad"), 1e-5, name + "'s gradient");
            assertBitwise(opByOp.get(name + "-grad"), replayed.get(name + "-grad"), name + "'s gradient against the op-by-op replay");
        }
    }

    @Test
    void aSumOfTwoSuchProductsFusesOneOfThem() {
        Nd4j.getRandom().setSeed(59);
        SameDiff sd = SameDiff.create();
        SDVariable rows = sd.reshape(sd.placeHolder("x", DataType.FLOAT, -1, SEQUENCE, WIDTH), -1, WIDTH);
        SDVariable first = rows.mmul(sd.var("a1", Nd4j.randn(DataType.FLOAT, WIDTH, RANK))).mmul(sd.var("b1", Nd4j.randn(DataType.FLOAT, RANK, WIDTH)));
        SDVariable second = rows.mmul(sd.var("a2", Nd4j.randn(DataType.FLOAT, WIDTH, RANK))).mmul(sd.var("b2", Nd4j.randn(DataType.FLOAT, RANK, WIDTH)));
        first.add(second).rename("out");
        Map<String, INDArray> placeholders = Map.of("x", placeholders().get("x"));
        RecordedStep fused = record(sd, placeholders, "out");
        assertEquals(2, fused.fusedCalls(), "one product and the sum; the other product runs on its own");
        assertBitwise(withoutFusion(() -> record(sd, placeholders, "out")).output(placeholders).get("out"), fused.output(placeholders).get("out"),
                "against the op-by-op replay");
    }

    @Test
    void productsWithoutAShortSideOrWithProductKernelsOffStayOpByOp() {
        SameDiff wide = graph(WIDTH / 2);
        Map<String, INDArray> placeholders = placeholders();
        assertEquals(0, record(wide, placeholders, "out").fusedCalls(), "rank 20");
        SameDiff sd = graph(RANK);
        RecordedStep step = RecordedSteps.withProperty(ReplayKernels.PRODUCT_PROPERTY, "false", () -> record(sd, placeholders, "out"));
        assertEquals(0, step.fusedCalls());
        assertClose(sd.output(placeholders, "out").get("out"), step.output(placeholders).get("out"), 2e-6, "out");
    }

    /**
     * Training updates each parameter inside the step right after its gradient's call: A's gradient
     * comes from the pass at the sum, so A is updated there, after the pass has read it.
     */
    @Test
    void trainingUpdatesAAfterThePassThatComputesItsGradient() {
        Map<Boolean, Map<String, float[]>> trained = new java.util.LinkedHashMap<>();
        Map<String, INDArray> placeholders = placeholders();
        for (boolean fused : new boolean[] {false, true}) {
            SameDiff sd = graph(RANK);
            TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.01)).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
            MultiDataSet batch = new MultiDataSet(new INDArray[] {placeholders.get("x")}, new INDArray[] {placeholders.get("y")});
            Supplier<TrainingReport> training = () -> SameDiffTrainer.fit(sd, config, new SingletonMultiDataSetIterator(batch), 6,
                    new ProgressListener(null, 100));
            TrainingReport report = fused ? training.get() : withoutFusion(training);
            assertEquals(6, report.steps());
            Map<String, float[]> values = new java.util.LinkedHashMap<>();
            for (String name : new String[] {"w1", "a", "b"}) {
                values.put(name, sd.getArrForVarName(name).data().asFloat());
            }
            trained.put(fused, values);
        }
        for (String name : trained.get(false).keySet()) {
            assertArrayEquals(trained.get(false).get(name), trained.get(true).get(name), name + " after six steps, four replayed");
        }
    }

    private static <T> T withoutFusion(Supplier<T> action) {
        return RecordedSteps.withProperty(ReplayKernels.FUSION_PROPERTY, "false", action);
    }

    private static Map<String, INDArray> placeholders() {
        INDArray x = Nd4j.randn(DataType.FLOAT, BATCH, SEQUENCE, WIDTH);
        return Map.of("x", x, "y", x.mul(0.5));
    }

    private static void assertBitwise(INDArray expected, INDArray actual, String what) {
        assertArrayEquals(expected.shape(), actual.shape(), what);
        assertArrayEquals(expected.data().asFloat(), actual.data().asFloat(), what);
    }

    /**
     * {@code h = tanh(x · w1)}, {@code out = h · w2 + ((h · a) · 2) · b} over rows of {@code x [3, 70, 40]}
     * reshaped as a layer does, {@code loss = mean((out − y)²)}; {@code w2} frozen.
     */
    private static SameDiff graph(int rank) {
        Nd4j.getRandom().setSeed(53);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.3));
        SDVariable w2 = sd.constant("w2", Nd4j.randn(DataType.FLOAT, WIDTH, WIDTH).muli(0.3));
        SDVariable a = sd.var("a", Nd4j.randn(DataType.FLOAT, WIDTH, rank).muli(0.3));
        SDVariable b = sd.var("b", Nd4j.randn(DataType.FLOAT, rank, WIDTH).muli(0.3));
        SDVariable h = sd.math.tanh(sd.reshape(x, -1, WIDTH).mmul(w1));
        SDVariable base = sd.reshape(h.mmul(w2), -1, SEQUENCE, WIDTH);
        SDVariable delta = sd.reshape(h.mmul(a).mul(2.0).mmul(b), -1, SEQUENCE, WIDTH);
        SDVariable out = base.add(delta).rename("out");
        sd.math.square(out.sub(y)).mean().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }
}
