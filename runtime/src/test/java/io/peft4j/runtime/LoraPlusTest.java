package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.ClassifierTraining;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.adapter.SingletonDataSetIterator;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.config.Sgd;

/** LoRA+: lora_B and trained vectors learn at ratio × the learning rate, the rest at the learning rate, as PEFT groups them. */
class LoraPlusTest {

    private static final int ROWS = 16;

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private record Setup(ClassifierTraining training) {
        static Setup create() {
            return new Setup(ClassifierTraining.create(ROWS));
        }

        Map<String, INDArray> trainable() {
            return training.trainable();
        }

        Map<String, INDArray> train(IUpdater updater, int epochs, TrainingOptions options) {
            return train(config(updater), epochs, options);
        }

        Map<String, INDArray> train(TrainingConfig config, int epochs, TrainingOptions options) {
            Map<String, INDArray> before = trainable();
            training.peft().train(config, new SingletonDataSetIterator(training.data()), epochs, new ProgressListener(null, 100), options);
            Map<String, INDArray> steps = new LinkedHashMap<>();
            trainable().forEach((name, after) -> steps.put(name, after.sub(before.get(name))));
            return steps;
        }
    }

    private static TrainingConfig config(IUpdater updater) {
        return TrainingConfig.builder().updater(updater).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
    }

    @Test
    void bAndVectorsStepRatioTimesFurtherThanTheRest() {
        Map<String, INDArray> plain = Setup.create().train(new Sgd(0.1), 1, TrainingOptions.defaults());
        Map<String, INDArray> plus = Setup.create().train(new Sgd(0.1), 1, TrainingOptions.defaults().withLoraPlus(16));
        int scaled = 0;
        int unscaled = 0;
        for (String name : plain.keySet()) {
            INDArray step = plain.get(name);
            boolean fast = name.contains("lora_B") || step.rank() == 1;
            INDArray expected = fast ? step.mul(16) : step;
            assertArrayEquals(expected.data().asFloat(), plus.get(name).data().asFloat(), 1e-6f * Math.max(1, expected.amaxNumber().floatValue()),
                    name + (fast ? " steps 16 × as far" : " steps as far"));
            if (step.amaxNumber().doubleValue() > 0) {
                if (fast) {
                    scaled++;
                } else {
                    unscaled++;
                }
            }
        }
        assertTrue(scaled >= 2, "lora_B and the classifier's bias moved: " + plain.keySet());
        assertTrue(unscaled >= 1, "the classifier's weight moved: " + plain.keySet());
    }

    @Test
    void trainingTwiceEqualsTrainingOnceForTwoEpochs() {
        Setup twice = Setup.create();
        TrainingOptions options = TrainingOptions.defaults().withLoraPlus(16);
        TrainingConfig config = config(new Adam(0.01));
        twice.train(config, 1, options);
        twice.train(config, 2, options);
        Setup once = Setup.create();
        once.train(new Adam(0.01), 2, options);
        Map<String, INDArray> a = twice.trainable();
        Map<String, INDArray> b = once.trainable();
        assertEquals(a.keySet(), b.keySet());
        a.forEach((name, value) -> assertArrayEquals(b.get(name).data().asFloat(), value.data().asFloat(), 0f,
                name + ": the ratio is applied once and Adam's moments survive between runs"));
    }

    @Test
    void ownLoopsTrainAsTrainDoes() {
        Setup reference = Setup.create();
        reference.train(new Adam(0.01), 3, TrainingOptions.defaults().withLoraPlus(16));
        Setup own = Setup.create();
        try (TrainingMode mode = own.training.peft().trainingMode()) {
            ParameterUpdater updater = new ParameterUpdater(mode.sameDiff(), mode.trainableVariables(), new Adam(0.01), java.util.List.of(), 16);
            Map<String, INDArray> batch = Map.of("x", own.training.data().getFeatures(), "y", own.training.data().getLabels());
            mode.run(java.util.List.of(batch, batch, batch).iterator(), (index, loss, gradients) -> updater.apply(gradients, index, index));
        }
        Map<String, INDArray> expected = reference.trainable();
        own.trainable().forEach((name, value) -> assertArrayEquals(expected.get(name).data().asFloat(), value.data().asFloat(), 0f, name));
    }
}
