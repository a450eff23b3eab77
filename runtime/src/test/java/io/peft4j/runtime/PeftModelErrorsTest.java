package io.peft4j.runtime;

import io.peft4j.runtime.lora.LoraAdapter;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.TestLinear;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.adapter.SingletonDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/** Every misuse ends in a {@link PeftException} that names what was wrong and what to do. */
class PeftModelErrorsTest {

    @BeforeEach
    void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    @AfterEach
    void restore() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    /** A model whose layers carry no peft4j annotation. */
    static final class Unannotated {
        final SDVariable weight = SameDiff.create().var("w", Nd4j.rand(DataType.FLOAT, 4, 4));
    }

    @Test
    void unannotatedModelNamesTheRootType() {
        PeftException error = assertThrows(PeftException.class, () -> PeftModel.attach(new Unannotated()));
        assertTrue(error.getMessage().contains(Unannotated.class.getName()), error.getMessage());
        assertTrue(error.getMessage().contains("@LoRA"), error.getMessage());
    }

    /** A layer adapted with a rank larger than its 5 × 3 weight allows. */
    static final class RankTooLarge {
        @LoRA(rank = 4)
        final TestLinear narrow = new TestLinear(SameDiff.create(), "narrow", 5, 3, DataType.FLOAT,
                Nd4j.getRandomFactory().getNewRandomInstance(1));
    }

    @Test
    void rankLargerThanTheLayerIsRefusedWithItsShape() {
        PeftException error = assertThrows(PeftException.class, () -> PeftModel.attach(new RankTooLarge()));
        assertTrue(error.getMessage().contains("rank = 4") && error.getMessage().contains("'narrow'")
                && error.getMessage().contains("min(in, out) = 3"), error.getMessage());
    }

    @Test
    void missingAgentSaysHowToInstallIt() {
        System.clearProperty(AgentStatus.INSTALLED_PROPERTY);
        PeftException error = assertThrows(PeftException.class, () -> PeftModel.attach(new TwoLayerModel(DataType.FLOAT, 1)));
        assertTrue(error.getMessage().contains("-javaagent:") && error.getMessage().contains("PeftAgent.install()"),
                error.getMessage());
    }

    @Test
    void inputOfTheWrongWidthNamesLayerAndShapes() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 1);
        PeftModel.attach(model);
        SDVariable tooWide = model.sd.placeHolder("x", DataType.FLOAT, 2, TwoLayerModel.IN + 1);
        PeftException error = assertThrows(PeftException.class, () -> model.head().forward(tooWide));
        assertTrue(error.getMessage().contains("'head'") && error.getMessage().contains("[2, 7]")
                && error.getMessage().contains("must be 5"), error.getMessage());
    }

    @Test
    void mergeRefusesNonFiniteResultAndLeavesEveryWeightUntouched() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 1);
        PeftModel peft = PeftModel.attach(model);
        LoraAdapter.of(peft).layer("blocks.0").weights().b().assign(0.1);
        LoraAdapter.of(peft).layer("head").weights().b().assign(Float.NaN);
        INDArray firstBefore = model.blocks().get(0).weight().getArr().dup();
        INDArray headBefore = model.head().weight().getArr().dup();

        PeftException error = assertThrows(PeftException.class, peft::merge);
        assertTrue(error.getMessage().contains("head.weight") && error.getMessage().contains("NaN"), error.getMessage());
        assertArrayEquals(firstBefore.data().asFloat(), model.blocks().get(0).weight().getArr().data().asFloat(), 1e-7f,
                "the layer merged before the failure was rolled back");
        assertArrayEquals(headBefore.data().asFloat(), model.head().weight().getArr().data().asFloat(), 0f);
        assertTrue(!peft.isMerged());
    }

    @Test
    void trainingBeforeTheGraphWasBuiltExplainsTheOrder() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 1);
        PeftModel peft = PeftModel.attach(model);
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.01)).dataSetFeatureMapping("x")
                .dataSetLabelMapping("y").build();
        DataSet data = new DataSet(Nd4j.rand(DataType.FLOAT, 2, 6), Nd4j.rand(DataType.FLOAT, 2, 3));
        PeftException error = assertThrows(PeftException.class,
                () -> peft.train(config, new SingletonDataSetIterator(data), 1));
        assertTrue(error.getMessage().contains("after PeftModel.attach()"), error.getMessage());
    }

    @Test
    void attachingTwiceToTheSameLayersIsRefused() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 1);
        PeftModel.attach(model);
        PeftException error = assertThrows(PeftException.class, () -> PeftModel.attach(model));
        assertTrue(error.getMessage().contains("already has PEFT attached"), error.getMessage());
    }
}
