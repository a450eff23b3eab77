package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.WeightLayout;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** LoRA dropout drops branch inputs while training and is the identity otherwise. */
class LoraDropoutTest {

    @LoRA(rank = 4, alpha = 4, dropout = 0.5)
    private static final class Annotated {
    }

    @Test
    void dropoutIsActiveOnlyInTraining() {
        SameDiff sd = SameDiff.create();
        SDVariable weight = sd.var("w", Nd4j.zeros(DataType.DOUBLE, 64, 64));
        Object layer = new Object();
        LoraSettings settings = LoraSettings.of(Annotated.class.getAnnotation(LoRA.class), "test");
        LoraBranch branch = new LoraBranch("layer", layer, weight, WeightLayout.IN_OUT, settings,
                Nd4j.getRandomFactory().getNewRandomInstance(3));
        sd.getVariable("layer.lora_A").getArr().assign(Nd4j.eye(64).get(
                org.nd4j.linalg.indexing.NDArrayIndex.all(), org.nd4j.linalg.indexing.NDArrayIndex.interval(0, 4)));
        sd.getVariable("layer.lora_B").getArr().assign(Nd4j.eye(4).castTo(DataType.DOUBLE).reshape(4, 4)
                .repeat(1, 16).reshape(4, 64));
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, 64);
        SDVariable y = (SDVariable) branch.afterForward(x, x.mmul(weight));
        INDArray ones = Nd4j.ones(DataType.DOUBLE, 256, 64);

        INDArray inference = sd.output(Map.of("x", ones), y.name()).get(y.name());
        INDArray again = sd.output(Map.of("x", ones), y.name()).get(y.name());
        assertArrayEquals(inference.data().asDouble(), again.data().asDouble(), 0.0, "deterministic in inference");
        assertEquals(1.0, inference.getDouble(0, 0), 1e-12, "no dropout: x·A·B·s = 1");

        branch.setTraining(true);
        INDArray training = sd.output(Map.of("x", ones), y.name()).get(y.name());
        // Each output is s·x_j for one kept-or-dropped input j, scaled by 1 / (1 - p): 0 or 2.
        for (double value : training.data().asDouble()) {
            assertFalse(value != 0.0 && Math.abs(value - 2.0) > 1e-12, "value " + value);
        }
        double keptFraction = training.meanNumber().doubleValue() / 2.0;
        assertEquals(0.5, keptFraction, 0.05, "about half the inputs are kept");

        branch.setTraining(false);
        INDArray afterTraining = sd.output(Map.of("x", ones), y.name()).get(y.name());
        assertArrayEquals(inference.data().asDouble(), afterTraining.data().asDouble(), 0.0);
    }

    @Test
    void gradientsFlowThroughTheDropoutMask() {
        SameDiff sd = SameDiff.create();
        SDVariable weight = sd.constant("w", Nd4j.rand(DataType.DOUBLE, 8, 8));
        LoraBranch branch = new LoraBranch("layer", new Object(), weight, WeightLayout.IN_OUT,
                LoraSettings.of(Annotated.class.getAnnotation(LoRA.class), "test"), Nd4j.getRandomFactory().getNewRandomInstance(5));
        sd.getVariable("layer.lora_B").getArr().assign(0.3);
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, 8);
        SDVariable y = (SDVariable) branch.afterForward(x, x.mmul(weight));
        sd.setLossVariables(y.sum().rename("loss").name());
        branch.setTraining(true);
        Map<String, INDArray> gradients = sd.calculateGradients(Map.of("x", Nd4j.ones(DataType.DOUBLE, 32, 8)),
                "layer.lora_A", "layer.lora_B");
        assertFalse(gradients.get("layer.lora_A").equals(Nd4j.zeros(DataType.DOUBLE, 8, 4)));
        assertFalse(gradients.get("layer.lora_B").equals(Nd4j.zeros(DataType.DOUBLE, 4, 8)));
    }
}
