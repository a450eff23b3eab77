package io.peft4j.runtime;

import io.peft4j.annotations.Adapter;
import io.peft4j.runtime.bottleneck.BottleneckAdapter;
import io.peft4j.runtime.bottleneck.BottleneckLayer;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.AdapterTestModel;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.adapter.SingletonDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/** Bottleneck adapters {@code h + up(act(down(h)))} in a SameDiff graph. */
class BottleneckAdapterTest {

    private static final List<String> SUFFIXES = List.of(".adapters.default.adapter_down.weight", ".adapters.default.adapter_down.bias",
            ".adapters.default.adapter_up.weight", ".adapters.default.adapter_up.bias");

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static INDArray input(DataType dtype, long seed, int rows) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        return Nd4j.rand(random, rows, AdapterTestModel.IN).castTo(dtype).subi(0.5).muli(2);
    }

    @Test
    void adapterIsTheIdentityAtInit() {
        AdapterTestModel model = new AdapterTestModel(DataType.FLOAT, 1);
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, AdapterTestModel.IN);
        SDVariable base = model.forward(x);
        PeftModel.builder(model).only(Adapter.class).attach();
        SDVariable adapted = model.forward(x);
        Map<String, INDArray> out = model.sd.output(Map.of("x", input(DataType.FLOAT, 2, 5)), base.name(), adapted.name());
        assertArrayEquals(out.get(base.name()).data().asFloat(), out.get(adapted.name()).data().asFloat());
        assertEquals(0.0, model.sd.getVariable("output.adapters.default.adapter_up.weight").getArr().amaxNumber().doubleValue());
        assertTrue(model.sd.getVariable("output.adapters.default.adapter_down.weight").getArr().amaxNumber().doubleValue() > 0);
    }

    @Test
    void parameterCountIsTwoDBPlusBPlusDPerAdapter() {
        AdapterTestModel model = new AdapterTestModel(DataType.FLOAT, 1);
        PeftModel peft = PeftModel.builder(model).only(Adapter.class).attach();
        model.forward(model.sd.placeHolder("x", DataType.FLOAT, -1, AdapterTestModel.IN));
        // hidden: d 8, b 3 → 2·8·3 + 3 + 8 = 59; output: d 4, b 4 / 2 = 2 → 2·4·2 + 2 + 4 = 22
        assertEquals(List.of(59L, 22L), BottleneckAdapter.of(peft, "default").layerViews().stream().map(BottleneckLayer::parameterCount).toList());
        assertEquals(List.of("tanh", "swish"), BottleneckAdapter.of(peft, "default").layerViews().stream().map(BottleneckLayer::activation).toList());
        // base: 6·8 + 8 + 8·4 + 4 = 92
        assertEquals(new ParameterCount(81, 173), peft.parameterCount());
    }

    @Test
    void loraAndAdaptersCombineOnTheSameLayers() {
        AdapterTestModel model = new AdapterTestModel(DataType.FLOAT, 1);
        PeftModel peft = PeftModel.attach(model);
        model.forward(model.sd.placeHolder("x", DataType.FLOAT, -1, AdapterTestModel.IN));
        // LoRA rank 2: 2·(6 + 8) + 2·(8 + 4) = 52, adapters 81
        assertEquals(new ParameterCount(133, 225), peft.parameterCount());
    }

    @Test
    void gradientsOfDownAndUpMatchFiniteDifferences() {
        AdapterTestModel model = new AdapterTestModel(DataType.DOUBLE, 3);
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, AdapterTestModel.IN);
        PeftModel.builder(model).only(Adapter.class).attach();
        SDVariable loss = sd.math.square(model.forward(x)).sum().rename("loss");
        sd.setLossVariables(loss.name());
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(4);
        for (String layer : List.of("hidden", "output")) {
            for (String suffix : SUFFIXES) { // zero up-projections would make every down gradient 0
                INDArray parameter = sd.getVariable(layer + suffix).getArr();
                parameter.assign(Nd4j.rand(random, parameter.shape()).castTo(DataType.DOUBLE).subi(0.5));
            }
        }
        Map<String, INDArray> feed = Map.of("x", input(DataType.DOUBLE, 5, 3));
        List<String> names = List.of("hidden", "output").stream().flatMap(layer -> SUFFIXES.stream().map(s -> layer + s)).toList();
        double worst = FiniteDifferences.worstRelativeError(sd, feed, names, "loss");
        assertTrue(worst < 1e-5, "worst relative gradient error " + worst);
    }

    @Test
    void trainingChangesOnlyTheAdaptersAndLowersTheLoss() {
        AdapterTestModel model = new AdapterTestModel(DataType.FLOAT, 11);
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, AdapterTestModel.IN);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, AdapterTestModel.OUT);
        PeftModel peft = PeftModel.builder(model).only(Adapter.class).attach();
        sd.loss.meanSquaredError("loss", y, model.forward(x), null);
        Map<String, INDArray> baseBefore = new HashMap<>();
        for (String name : List.of("hidden.weight", "hidden.bias", "output.weight", "output.bias")) {
            baseBefore.put(name, sd.getVariable(name).getArr().dup());
        }
        INDArray features = input(DataType.FLOAT, 12, 64);
        INDArray labels = Nd4j.math().cos(features.mmul(Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(13),
                AdapterTestModel.IN, AdapterTestModel.OUT).castTo(DataType.FLOAT).muli(3)));
        TrainingReport report = peft.train(TrainingConfig.builder().updater(new Adam(0.03)).dataSetFeatureMapping("x")
                        .dataSetLabelMapping("y").build(), new SingletonDataSetIterator(new DataSet(features, labels)), 80,
                new ProgressListener(null, 10));
        assertTrue(report.meanOfLast(5) < 0.7 * report.meanOfFirst(5),
                "loss fell from " + report.meanOfFirst(5) + " to " + report.meanOfLast(5));
        baseBefore.forEach((name, before) -> assertArrayEquals(before.data().asFloat(),
                sd.getVariable(name).getArr().data().asFloat(), 0f, name + " is frozen"));
        assertFalse(sd.getVariable("output.adapters.default.adapter_up.weight").getArr().equals(Nd4j.zeros(DataType.FLOAT, 2, 4)));
    }

    @Test
    void badAdapterValuesAreRefusedAtAttach() {
        final class UnknownActivation {
            @io.peft4j.annotations.Adapter(activation = "sigmoid")
            final io.peft4j.runtime.testmodel.TestLinear layer = new io.peft4j.runtime.testmodel.TestLinear(SameDiff.create(),
                    "l", 4, 4, DataType.FLOAT, Nd4j.getRandomFactory().getNewRandomInstance(1));
        }
        PeftException error = assertThrows(PeftException.class,
                () -> PeftModel.builder(new UnknownActivation()).only(Adapter.class).attach());
        assertTrue(error.getMessage().contains("unknown activation") && error.getMessage().contains("'layer'"),
                error.getMessage());
    }
}
