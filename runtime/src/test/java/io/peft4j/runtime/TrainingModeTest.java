package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.ClassifierModel;
import io.peft4j.runtime.testmodel.ClassifierTraining;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.ViewIterator;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.regularization.Regularization;
import org.nd4j.linalg.learning.regularization.WeightDecay;

/** A training loop of one's own, with {@link TrainingMode} and {@link ParameterUpdater}, trains exactly as {@code train(...)} does. */
class TrainingModeTest {

    private static final int STEPS = 12;
    private static final int BATCH = 8;

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private record Setup(ClassifierModel model, PeftModel peft, DataSet data) {
        static Setup create() {
            ClassifierTraining training = ClassifierTraining.create(STEPS * BATCH);
            return new Setup(training.model(), training.peft(), training.data());
        }

        Map<String, float[]> trainable() {
            Map<String, float[]> values = new LinkedHashMap<>();
            new ClassifierTraining(model, peft, data).trainable().forEach((name, value) -> values.put(name, value.data().asFloat()));
            return values;
        }
    }

    /** Batches {@code from} to {@code to} (exclusive) of {@code BATCH} rows as placeholder maps. */
    private static List<Map<String, INDArray>> batches(DataSet data, int from, int to) {
        List<Map<String, INDArray>> batches = new ArrayList<>();
        for (int step = from; step < to; step++) {
            DataSet batch = (DataSet) data.getRange(step * BATCH, (step + 1) * BATCH);
            batches.add(Map.of("x", batch.getFeatures(), "y", batch.getLabels()));
        }
        return batches;
    }

    private static Adam adam() {
        return new Adam(0.01);
    }

    @Test
    void ownLoopEqualsTrainBitForBit() {
        compareWithTrain(List.of());
    }

    @Test
    void ownLoopEqualsTrainWithDecoupledWeightDecay() {
        compareWithTrain(List.of(new WeightDecay(0.01, true)));
    }

    /** Same model, data and optimizer through train(...) and through an own loop: identical parameters and data losses. */
    private static void compareWithTrain(List<Regularization> regularization) {
        Setup reference = Setup.create();
        TrainingConfig config = TrainingConfig.builder().updater(adam()).regularization(regularization)
                .dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
        TrainingReport report = reference.peft.train(config, new ViewIterator(reference.data, BATCH), 1, new ProgressListener(null, 100));

        Setup own = Setup.create();
        List<Double> losses = new ArrayList<>();
        try (TrainingMode mode = own.peft.trainingMode()) {
            assertEquals(reference.trainable().keySet(), new LinkedHashSet<>(mode.trainableVariables()),
                    "the active adapter's A and B and the head are what trains");
            ParameterUpdater updater = new ParameterUpdater(mode.sameDiff(), mode.trainableVariables(), adam(), regularization);
            int steps = mode.run(batches(own.data, 0, STEPS).iterator(), (index, loss, gradients) -> {
                losses.add(loss);
                updater.apply(gradients, index, 0);
            });
            assertEquals(STEPS, steps);
        }
        Map<String, float[]> expected = reference.trainable();
        Map<String, float[]> actual = own.trainable();
        for (String name : expected.keySet()) {
            assertArrayEquals(expected.get(name), actual.get(name), 0f, name + " after " + STEPS + " steps");
        }
        if (regularization.isEmpty()) { // train() reports the regularization term inside its loss; lossAndGradients does not
            for (int step = 0; step < STEPS; step++) {
                assertEquals(report.losses()[step], losses.get(step), 1e-6, "loss of step " + step);
            }
        }
        assertFalse(java.util.Arrays.equals(expected.values().iterator().next(), Setup.create().trainable().values().iterator().next()),
                "training changed the parameters");
    }

    @Test
    void replayedStepsGiveSameDiffsGradients() {
        Map<Boolean, Map<String, float[]>> trained = new LinkedHashMap<>();
        Map<Boolean, List<Double>> losses = new LinkedHashMap<>();
        for (boolean replayed : new boolean[] {false, true}) {
            System.setProperty(SameDiffTrainer.RECORDED_STEPS, Boolean.toString(replayed));
            // peft4j's product kernels sum in another order than BLAS (AttentionProductsReplayTest, LowRankProductsTest)
            System.setProperty(SameDiffTrainer.PRODUCT_KERNELS, "false");
            try {
                Setup setup = Setup.create();
                List<Double> stepLosses = new ArrayList<>();
                try (TrainingMode mode = setup.peft.trainingMode()) {
                    ParameterUpdater updater = new ParameterUpdater(mode.sameDiff(), mode.trainableVariables(), adam(), List.of());
                    mode.run(batches(setup.data, 0, STEPS).iterator(), (index, loss, gradients) -> {
                        stepLosses.add(loss);
                        updater.apply(gradients, index, 0);
                    });
                    assertEquals(replayed ? STEPS - 2 : 0, mode.replayedSteps(), "steps after the first two of the batch shape replay");
                }
                trained.put(replayed, setup.trainable());
                losses.put(replayed, stepLosses);
            } finally {
                System.clearProperty(SameDiffTrainer.RECORDED_STEPS);
                System.clearProperty(SameDiffTrainer.PRODUCT_KERNELS);
            }
        }
        assertEquals(losses.get(false), losses.get(true));
        for (String name : trained.get(false).keySet()) {
            assertArrayEquals(trained.get(false).get(name), trained.get(true).get(name), 0f, name);
        }
    }

    @Test
    void fusedKernelsTrainAsTheOpByOpReplayDoesBitForBit() {
        Map<Boolean, Map<String, float[]>> trained = new LinkedHashMap<>();
        for (boolean fused : new boolean[] {false, true}) {
            System.setProperty(SameDiffTrainer.RECORDED_STEPS, "true");
            System.setProperty(SameDiffTrainer.FUSED_KERNELS, Boolean.toString(fused));
            try {
                Setup setup = Setup.create();
                try (TrainingMode mode = setup.peft.trainingMode()) {
                    ParameterUpdater updater = new ParameterUpdater(mode.sameDiff(), mode.trainableVariables(), adam(), List.of());
                    mode.run(batches(setup.data, 0, STEPS).iterator(), (index, loss, gradients) -> updater.apply(gradients, index, 0));
                }
                trained.put(fused, setup.trainable());
            } finally {
                System.clearProperty(SameDiffTrainer.RECORDED_STEPS);
                System.clearProperty(SameDiffTrainer.FUSED_KERNELS);
            }
        }
        for (String name : trained.get(false).keySet()) {
            assertArrayEquals(trained.get(false).get(name), trained.get(true).get(name), 0f, name);
        }
    }

    /**
     * As {@link #fusedKernelsTrainAsTheOpByOpReplayDoesBitForBit} through train(...), which updates each
     * parameter inside the step right after its gradient: a fused group that computes LoRA's A gradient
     * at a later call must update A there, after reading it.
     */
    @Test
    void trainWithFusedKernelsEqualsTheOpByOpReplayBitForBit() {
        Map<Boolean, Map<String, float[]>> trained = new LinkedHashMap<>();
        for (boolean fused : new boolean[] {false, true}) {
            System.setProperty(SameDiffTrainer.FUSED_KERNELS, Boolean.toString(fused));
            try {
                Setup setup = Setup.create();
                TrainingConfig config = TrainingConfig.builder().updater(adam()).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
                setup.peft.train(config, new ViewIterator(setup.data, BATCH), 1, new ProgressListener(null, 100));
                trained.put(fused, setup.trainable());
            } finally {
                System.clearProperty(SameDiffTrainer.FUSED_KERNELS);
            }
        }
        for (String name : trained.get(false).keySet()) {
            assertArrayEquals(trained.get(false).get(name), trained.get(true).get(name), 0f, name);
        }
    }

    @Test
    void optimizerStateRoundTripsAndContinuesIdentically() {
        Setup first = Setup.create();
        Setup second = Setup.create();
        try (TrainingMode a = first.peft.trainingMode(); TrainingMode b = second.peft.trainingMode()) {
            ParameterUpdater ua = new ParameterUpdater(a.sameDiff(), a.trainableVariables(), adam(), List.of());
            a.run(batches(first.data, 0, STEPS / 2 + 1).iterator(), (index, loss, gradients) -> ua.apply(gradients, index, 0));
            // b restarts from a's parameters and optimizer state, as a resumed run would, and both go on
            Map<String, INDArray> saved = new LinkedHashMap<>();
            ua.state().forEach((name, state) -> saved.put(name, state.dup()));
            ParameterUpdater ub = new ParameterUpdater(b.sameDiff(), b.trainableVariables(), adam(), List.of());
            ub.restore(saved);
            for (String name : a.trainableVariables()) {
                b.sameDiff().getVariable(name).getArr().assign(a.sameDiff().getVariable(name).getArr());
            }
            int resumed = STEPS / 2 + 1;
            a.run(batches(first.data, resumed, STEPS).iterator(), (index, loss, gradients) -> ua.apply(gradients, resumed + index, 0));
            b.run(batches(second.data, resumed, STEPS).iterator(), (index, loss, gradients) -> ub.apply(gradients, resumed + index, 0));
        }
        Map<String, float[]> expected = first.trainable();
        Map<String, float[]> actual = second.trainable();
        for (String name : expected.keySet()) {
            assertArrayEquals(expected.get(name), actual.get(name), 0f, name);
        }
    }

    @Test
    void needsALossAndStopsWhenClosed() {
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).attach();
        model.forward(model.sd.placeHolder("x", DataType.FLOAT, -1, ClassifierModel.IN));
        PeftException noLoss = assertThrows(PeftException.class, peft::trainingMode);
        assertTrue(noLoss.getMessage().contains("setLossVariables"), noLoss.getMessage());

        Setup setup = Setup.create();
        TrainingMode mode = setup.peft.trainingMode();
        mode.close();
        PeftException closed = assertThrows(PeftException.class, () -> mode.run(List.<Map<String, INDArray>>of().iterator(), (i, l, g) -> { }));
        assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
    }
}
