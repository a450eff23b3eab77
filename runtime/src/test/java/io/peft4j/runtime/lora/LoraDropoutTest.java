package io.peft4j.runtime.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.TestLinear;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/** LoRA dropout drops branch inputs while training and is the identity otherwise. */
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
}
