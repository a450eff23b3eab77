package io.peft4j.runtime.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.TestLinear;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.api.ops.random.custom.DistributionUniform;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.Sgd;

/** LoRA dropout drops branch inputs while training, a new mask at every step, and is the identity otherwise. */
class LoraDropoutTest {

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    /** One 64 × 64 layer with a zero base weight and bias, so that the output is the branch alone. */
    static final class Model {
        final SameDiff sd = SameDiff.create();
        @LoRA(rank = 4, alpha = 4, dropout = 0.5)
        final TestLinear layer = new TestLinear(sd, "layer", 64, 64, DataType.DOUBLE, Nd4j.getRandomFactory().getNewRandomInstance(3));

        Model() {
            layer.weight().getArr().assign(0);
            sd.getVariable("layer.bias").getArr().assign(0);
        }
    }

    @Test
    void dropoutIsActiveOnlyInTraining() {
        // the mask comes from ND4J's shared generator: seeded here, the kept fraction does not depend on which tests ran before
        Nd4j.getRandom().setSeed(42);
        Model model = new Model();
        PeftModel peft = PeftModel.attach(model);
        LoraAdapter lora = LoraAdapter.of(peft);
        lora.layer("layer").weights().a().assign(Nd4j.eye(64).get(NDArrayIndex.all(), NDArrayIndex.interval(0, 4)));
        lora.layer("layer").weights().b().assign(Nd4j.eye(4).castTo(DataType.DOUBLE).reshape(4, 4).repeat(1, 16).reshape(4, 64));
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, 64);
        SDVariable y = model.layer.forward(x);
        INDArray ones = Nd4j.ones(DataType.DOUBLE, 256, 64);

        INDArray inference = model.sd.output(Map.of("x", ones), y.name()).get(y.name());
        INDArray again = model.sd.output(Map.of("x", ones), y.name()).get(y.name());
        assertArrayEquals(inference.data().asDouble(), again.data().asDouble(), 0.0, "deterministic in inference");
        assertEquals(1.0, inference.getDouble(0, 0), 1e-12, "no dropout: x·A·B·s = 1");

        lora.setTraining(true);
        INDArray training = model.sd.output(Map.of("x", ones), y.name()).get(y.name());
        // Each output is s·x_j for one kept-or-dropped input j, scaled by 1 / (1 - p): 0 or 2.
        for (double value : training.data().asDouble()) {
            assertFalse(value != 0.0 && Math.abs(value - 2.0) > 1e-12, "value " + value);
        }
        double keptFraction = training.meanNumber().doubleValue() / 2.0;
        assertEquals(0.5, keptFraction, 0.05, "about half the inputs are kept");

        lora.setTraining(false);
        INDArray afterTraining = model.sd.output(Map.of("x", ones), y.name()).get(y.name());
        assertArrayEquals(inference.data().asDouble(), afterTraining.data().asDouble(), 0.0);
    }

    @Test
    void gradientsFlowThroughTheDropoutMask() {
        Model model = new Model();
        PeftModel peft = PeftModel.attach(model);
        LoraAdapter lora = LoraAdapter.of(peft);
        lora.layer("layer").weights().b().assign(0.3);
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, 64);
        SDVariable y = model.layer.forward(x);
        model.sd.setLossVariables(y.sum().rename("loss").name());
        lora.setTraining(true);
        Map<String, INDArray> gradients = model.sd.calculateGradients(Map.of("x", Nd4j.ones(DataType.DOUBLE, 32, 64)),
                "layer.lora_A.default", "layer.lora_B.default");
        assertFalse(gradients.get("layer.lora_A.default").equals(Nd4j.zeros(DataType.DOUBLE, 64, 4)));
        assertFalse(gradients.get("layer.lora_B.default").equals(Nd4j.zeros(DataType.DOUBLE, 4, 64)));
    }

    @Test
    void trainingDrawsANewMaskEveryStepAndTheSameMasksUnderTheSameSeed() {
        List<INDArray> first = masksOfThreeSteps(7);
        List<INDArray> second = masksOfThreeSteps(7);
        assertEquals(3, first.size());
        for (int step = 1; step < first.size(); step++) {
            assertFalse(first.get(step).equals(first.get(0)), "step " + step + " drew step 0's mask again");
        }
        for (int step = 0; step < first.size(); step++) {
            assertEquals(0.0, first.get(step).sub(second.get(step)).amaxNumber().doubleValue(), 0.0, "step " + step + " under the same seed");
        }
    }

    /** The uniform draws behind the dropout mask at each of three training steps, ND4J's generator seeded with {@code seed}. */
    private static List<INDArray> masksOfThreeSteps(long seed) {
        Model model = new Model();
        PeftModel peft = PeftModel.attach(model);
        LoraAdapter lora = LoraAdapter.of(peft);
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, 64);
        SDVariable target = model.sd.placeHolder("target", DataType.DOUBLE, -1, 64);
        model.sd.setLossVariables(model.sd.math.square(model.layer.forward(x).sub(target)).sum().rename("loss").name());
        List<INDArray> draws = new ArrayList<>();
        model.sd.addListeners(new BaseListener() {
            @Override
            public boolean isActive(Operation operation) {
                return operation == Operation.TRAINING;
            }

            @Override
            public void opExecution(SameDiff sd, At at, org.nd4j.linalg.dataset.api.MultiDataSet batch, SameDiffOp op, OpContext context,
                                    INDArray[] outputs) {
                if (op.getOp() instanceof DistributionUniform) {
                    draws.add(outputs[0].dup());
                }
            }
        });
        lora.setTraining(true);
        Nd4j.getRandom().setSeed(seed);
        INDArray ones = Nd4j.ones(DataType.DOUBLE, 8, 64);
        TrainingConfig config = TrainingConfig.builder().updater(new Sgd(1e-3)).dataSetFeatureMapping("x").dataSetLabelMapping("target").build();
        SameDiffTrainer.fit(model.sd, config, new SingletonMultiDataSetIterator(new MultiDataSet(ones, ones)), 3, new ProgressListener(null, 1));
        return draws.subList(Math.max(0, draws.size() - 3), draws.size());
    }
}
