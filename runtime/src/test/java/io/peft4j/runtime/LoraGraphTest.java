package io.peft4j.runtime;

import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.util.ArrayList;
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
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;
import org.nd4j.linalg.dataset.adapter.SingletonDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.ops.transforms.Transforms;

/** LoRA in a SameDiff graph: init, gradients, merge and training. */
class LoraGraphTest {

    @BeforeAll
    static void actAsIfTheAgentWereInstalled() {
        // The test layers call ForwardDispatcher themselves, exactly as the agent's advice does.
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static INDArray input(DataType dtype, long seed, int rows) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        return Nd4j.rand(random, rows, TwoLayerModel.IN).castTo(dtype).subi(0.5).muli(2);
    }

    private static void randomizeB(PeftModel peft, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            INDArray b = layer.weights().b();
            b.assign(Nd4j.rand(random, b.shape()).castTo(b.dataType()).subi(0.5));
        }
    }

    @Test
    void adaptedModelEqualsBaseAtInitBecauseBIsZero() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 1);
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        SDVariable base = model.forward(x);
        PeftModel peft = PeftModel.attach(model);
        SDVariable adapted = model.forward(x);

        Map<String, INDArray> out = model.sd.output(Map.of("x", input(DataType.FLOAT, 2, 8)), base.name(), adapted.name());
        assertArrayEquals(out.get(base.name()).data().asFloat(), out.get(adapted.name()).data().asFloat());
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            assertEquals(0.0, layer.weights().b().sumNumber().doubleValue());
            double bound = 1 / Math.sqrt(layer.in());
            assertTrue(layer.weights().a().amaxNumber().doubleValue() <= bound, "A is kaiming-uniform within ±1/√in");
            assertTrue(layer.weights().a().amaxNumber().doubleValue() > bound / 4, "A is not zero");
        }
    }

    @Test
    void layersAreNamedByFieldPathWithListIndices() {
        PeftModel peft = PeftModel.attach(new TwoLayerModel(DataType.FLOAT, 1));
        assertEquals(List.of("blocks.0", "blocks.1", "head"), LoraAdapter.of(peft).layerViews().stream().map(LoraLayer::path).toList());
        assertEquals(List.of(2, 2, 1), LoraAdapter.of(peft).layerViews().stream().map(LoraLayer::rank).toList(), "field annotation wins");
    }

    @Test
    void parameterLineCountsAdaptersAndFrozenBase() {
        PeftModel peft = PeftModel.attach(new TwoLayerModel(DataType.FLOAT, 1));
        // base: 6·5+5 + 5·5+5 + 5·3+3 = 83; LoRA: 2·(6+5) + 2·(5+5) + 1·(5+3) = 50
        assertEquals(new ParameterCount(50, 133), peft.parameterCount());
        assertEquals("trainable params: 50 || all params: 133 || trainable%: 37.5940", peft.parameterCount().toString());
    }

    @Test
    void rsLoraScalesByAlphaOverSquareRootOfRank() {
        PeftModel peft = PeftModel.attach(new TwoLayerModel(DataType.DOUBLE, 1));
        assertEquals(2 / Math.sqrt(1), LoraAdapter.of(peft).layer("head").weights().scaling(), 1e-12);
        assertEquals(4 / 2.0, LoraAdapter.of(peft).layer("blocks.0").weights().scaling(), 1e-12);
    }

    @Test
    void branchAddsExactlyXTimesATimesScaleTimesB() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 3);
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.attach(model);
        randomizeB(peft, 4);
        SDVariable adapted = model.blocks().get(0).forward(x);
        INDArray in = input(DataType.DOUBLE, 5, 4);
        INDArray actual = model.sd.output(Map.of("x", in), adapted.name()).get(adapted.name());

        LoraLayer layer = LoraAdapter.of(peft).layer("blocks.0");
        INDArray w = model.blocks().get(0).weight().getArr();
        INDArray bias = model.sd.getVariable("blocks.0.bias").getArr();
        INDArray expected = in.mmul(w).addiRowVector(bias)
                .addi(in.mmul(layer.weights().a()).mmul(layer.weights().b()).muli(layer.weights().scaling()));
        assertTrue(expected.equalsWithEps(actual, 1e-12));
    }

    @Test
    void gradientsOfAAndBMatchFiniteDifferences() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 7);
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.attach(model);
        randomizeB(peft, 8); // with B = 0 every gradient of A is 0, which would check nothing
        SDVariable loss = sd.math.square(model.forward(x)).sum().rename("loss");
        sd.setLossVariables(loss.name());
        Map<String, INDArray> feed = Map.of("x", input(DataType.DOUBLE, 9, 4));

        List<String> names = new ArrayList<>();
        LoraAdapter.of(peft).layerViews().forEach(layer -> names.addAll(List.of(layer.path() + ".lora_A.default", layer.path() + ".lora_B.default")));
        double worst = FiniteDifferences.worstRelativeError(sd, feed, names, "loss");
        assertTrue(worst < 1e-6, "worst relative gradient error " + worst);
    }

    @Test
    void mergedForwardEqualsUnmergedAndUnmergeRestoresWeights() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 11);
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.attach(model);
        randomizeB(peft, 12);
        SDVariable unmergedGraph = model.forward(x);
        Map<String, INDArray> feed = Map.of("x", input(DataType.FLOAT, 13, 16));
        INDArray unmerged = model.sd.output(feed, unmergedGraph.name()).get(unmergedGraph.name());
        INDArray weightBefore = model.blocks().get(1).weight().getArr().dup();

        peft.merge();
        SDVariable mergedGraph = model.forward(x); // built after the merge: no branch at all
        Map<String, INDArray> after = model.sd.output(feed, unmergedGraph.name(), mergedGraph.name());
        assertTrue(peft.isMerged());
        assertTrue(maxRelativeDifference(unmerged, after.get(mergedGraph.name())) < 1e-5);
        assertTrue(maxRelativeDifference(unmerged, after.get(unmergedGraph.name())) < 1e-5,
                "a graph built before the merge must not add the branch a second time");
        assertFalse(weightBefore.equals(model.blocks().get(1).weight().getArr()), "merge changed W");

        peft.unmerge();
        INDArray restored = model.blocks().get(1).weight().getArr();
        assertTrue(maxRelativeDifference(weightBefore, restored) < 1e-6);
        INDArray again = model.sd.output(feed, unmergedGraph.name()).get(unmergedGraph.name());
        assertTrue(maxRelativeDifference(unmerged, again) < 1e-5);
    }

    static double maxRelativeDifference(INDArray expected, INDArray actual) {
        INDArray difference = Transforms.abs(expected.sub(actual));
        double scale = Math.max(expected.amaxNumber().doubleValue(), 1e-12);
        return difference.maxNumber().doubleValue() / scale;
    }

    @Test
    void trainingChangesOnlyTheAdaptersAndLowersTheLoss() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 21);
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, TwoLayerModel.OUT);
        PeftModel peft = PeftModel.attach(model);
        SDVariable prediction = model.forward(x);
        sd.loss.meanSquaredError("loss", y, prediction, null);

        Map<String, INDArray> baseBefore = new HashMap<>();
        for (SDVariable variable : sd.variables()) {
            if (variable.getArr() != null && variable.name().matches("(blocks\\.\\d|head)\\.(weight|bias)")) {
                baseBefore.put(variable.name(), variable.getArr().dup());
            }
        }
        assertEquals(6, baseBefore.size());
        Map<String, INDArray> adaptersBefore = new HashMap<>();
        LoraAdapter.of(peft).layerViews().forEach(layer -> {
            adaptersBefore.put(layer.path() + ".A", layer.weights().a().dup());
            adaptersBefore.put(layer.path() + ".B", layer.weights().b().dup());
        });

        INDArray features = input(DataType.FLOAT, 22, 64);
        INDArray labels = Nd4j.math().sin(features.mmul(Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(23),
                TwoLayerModel.IN, TwoLayerModel.OUT).castTo(DataType.FLOAT).muli(2)));
        DataSetIterator data = new SingletonDataSetIterator(new DataSet(features, labels));
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.05))
                .dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
        TrainingReport report = peft.train(config, data, 60, new ProgressListener(null, 10));

        assertEquals(60, report.steps());
        assertTrue(report.meanOfLast(5) < 0.7 * report.meanOfFirst(5),
                "loss fell from " + report.meanOfFirst(5) + " to " + report.meanOfLast(5));
        baseBefore.forEach((name, before) -> assertArrayEquals(before.data().asFloat(),
                sd.getVariable(name).getArr().data().asFloat(), 0f, name + " is frozen bit for bit"));
        LoraAdapter.of(peft).layerViews().forEach(layer -> {
            assertFalse(adaptersBefore.get(layer.path() + ".A").equals(layer.weights().a()), layer.path() + " A trained");
            assertFalse(adaptersBefore.get(layer.path() + ".B").equals(layer.weights().b()), layer.path() + " B trained");
        });
    }
}
