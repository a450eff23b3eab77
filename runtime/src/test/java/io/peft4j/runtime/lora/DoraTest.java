package io.peft4j.runtime.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
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
import org.nd4j.linalg.ops.transforms.Transforms;

/** DoRA: PEFT's forward, detached norm, magnitude init, merge, training and checkpoint keys. */
class DoraTest {

    @TempDir
    Path dir;

    @BeforeAll
    static void actAsIfTheAgentWereInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static final LoraConfig DORA = LoraConfig.targeting("blocks.0", "blocks.1", "head").rank(2).alpha(4).dora(true);

    private static INDArray input(DataType dtype, long seed, int rows) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        return Nd4j.rand(random, rows, TwoLayerModel.IN).castTo(dtype).subi(0.5).muli(2);
    }

    /** B and m away from their starting values, as after some training. */
    private static void perturb(PeftModel peft, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            INDArray b = layer.weights().b();
            b.assign(Nd4j.rand(random, b.shape()).castTo(b.dataType()).subi(0.5));
            layer.magnitude().muli(Nd4j.rand(random, layer.magnitude().shape()).castTo(b.dataType()).addi(0.5));
        }
    }

    private static double maxDifference(INDArray expected, INDArray actual) {
        return Transforms.abs(expected.sub(actual)).maxNumber().doubleValue();
    }

    @Test
    void magnitudeStartsAtTheColumnNormsSoTheModelStartsUnchanged() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 1);
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, TwoLayerModel.IN);
        SDVariable base = model.forward(x);
        PeftModel peft = PeftModel.builder(model).config(DORA).attach();
        SDVariable adapted = model.forward(x);

        Map<String, INDArray> out = model.sd.output(Map.of("x", input(DataType.DOUBLE, 2, 8)), base.name(), adapted.name());
        assertTrue(maxDifference(out.get(base.name()), out.get(adapted.name())) < 1e-12);
        LoraLayer first = LoraAdapter.of(peft).layer("blocks.0");
        assertTrue(first.dora());
        assertArrayEquals(new long[] {TwoLayerModel.HIDDEN}, first.magnitude().shape());
        assertTrue(model.blocks().get(0).weight().getArr().norm2(0).equalsWithEps(first.magnitude(), 1e-12));
        // per layer r·(in + out) + out: 2·11 + 5, 2·10 + 5, 2·8 + 3
        assertEquals(27 + 25 + 19, peft.parameterCount().trainable());
    }

    @Test
    void forwardIsMagnitudeTimesNormalisedAdaptedWeight() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 3);
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.builder(model).config(DORA).attach();
        perturb(peft, 4);
        SDVariable adapted = model.blocks().get(0).forward(x);
        INDArray in = input(DataType.DOUBLE, 5, 4);
        INDArray actual = model.sd.output(Map.of("x", in), adapted.name()).get(adapted.name());

        LoraLayer layer = LoraAdapter.of(peft).layer("blocks.0");
        INDArray adaptedWeight = model.blocks().get(0).weight().getArr().add(
                layer.weights().a().mmul(layer.weights().b()).muli(layer.weights().scaling()));
        INDArray doraWeight = adaptedWeight.divRowVector(adaptedWeight.norm2(0)).muliRowVector(layer.magnitude());
        INDArray expected = in.mmul(doraWeight).addiRowVector(model.sd.getVariable("blocks.0.bias").getArr());
        assertTrue(maxDifference(expected, actual) < 1e-12, "difference " + maxDifference(expected, actual));
    }

    /**
     * PEFT detaches ‖W + s·A·B‖ from the graph, so the gradients of A and B are those of a function in which
     * the norm is a constant: checked by finite differences of that function, computed here independently.
     */
    @Test
    void gradientsTreatTheNormAsAConstantAsPeftDoes() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 7);
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.builder(model).config(DORA).attach();
        perturb(peft, 8);
        SDVariable loss = sd.math.square(model.blocks().get(0).forward(x)).sum().rename("loss");
        sd.setLossVariables(loss.name());
        INDArray in = input(DataType.DOUBLE, 9, 4);
        LoraLayer layer = LoraAdapter.of(peft).layer("blocks.0");
        List<String> names = List.of("blocks.0.lora_A.default", "blocks.0.lora_B.default", "blocks.0.lora_magnitude.default");
        Map<String, INDArray> analytic = sd.calculateGradients(Map.of("x", in), names);

        INDArray w = model.blocks().get(0).weight().getArr();
        INDArray bias = sd.getVariable("blocks.0.bias").getArr();
        double s = layer.weights().scaling();
        INDArray frozenNorm = w.add(layer.weights().a().mmul(layer.weights().b()).muli(s)).norm2(0);
        List<INDArray> parameters = List.of(layer.weights().a(), layer.weights().b(), layer.magnitude());
        double eps = 1e-6;
        double worst = 0;
        for (int p = 0; p < parameters.size(); p++) {
            INDArray parameter = parameters.get(p);
            for (long i = 0; i < parameter.length(); i++) {
                double original = parameter.getDouble(i);
                parameter.putScalar(i, original + eps);
                double plus = constantNormLoss(in, w, bias, layer, frozenNorm);
                parameter.putScalar(i, original - eps);
                double minus = constantNormLoss(in, w, bias, layer, frozenNorm);
                parameter.putScalar(i, original);
                double numeric = (plus - minus) / (2 * eps);
                double exact = analytic.get(names.get(p)).getDouble(i);
                worst = Math.max(worst, Math.abs(numeric - exact) / Math.max(Math.abs(numeric) + Math.abs(exact), 1e-8));
            }
        }
        assertTrue(worst < 1e-6, "worst relative gradient error " + worst);
    }

    private static double constantNormLoss(INDArray in, INDArray w, INDArray bias, LoraLayer layer, INDArray norm) {
        INDArray adapted = w.add(layer.weights().a().mmul(layer.weights().b()).muli(layer.weights().scaling()));
        INDArray y = in.mmul(adapted.divRowVector(norm).muliRowVector(layer.magnitude())).addiRowVector(bias);
        return y.mul(y).sumNumber().doubleValue();
    }

    @Test
    void mergedForwardEqualsUnmergedAndUnmergeRestoresTheWeights() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 11);
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.builder(model).config(DORA).attach();
        perturb(peft, 12);
        SDVariable unmergedGraph = model.forward(x);
        Map<String, INDArray> feed = Map.of("x", input(DataType.FLOAT, 13, 16));
        INDArray unmerged = model.sd.output(feed, unmergedGraph.name()).get(unmergedGraph.name());
        List<INDArray> before = model.blocks().stream().map(block -> block.weight().getArr().dup()).toList();

        peft.merge();
        SDVariable mergedGraph = model.forward(x);
        Map<String, INDArray> after = model.sd.output(feed, unmergedGraph.name(), mergedGraph.name());
        assertTrue(maxDifference(unmerged, after.get(mergedGraph.name())) < 1e-5, "merged " + maxDifference(unmerged, after.get(mergedGraph.name())));
        assertTrue(maxDifference(unmerged, after.get(unmergedGraph.name())) < 1e-5, "the old graph sees the branch switched off");
        assertFalse(before.get(0).equals(model.blocks().get(0).weight().getArr()));

        peft.unmerge();
        for (int i = 0; i < before.size(); i++) {
            assertTrue(maxDifference(before.get(i), model.blocks().get(i).weight().getArr()) < 1e-6, "blocks." + i + " restored");
        }
        assertTrue(maxDifference(unmerged, model.sd.output(feed, unmergedGraph.name()).get(unmergedGraph.name())) < 1e-5);
    }

    @Test
    void eagerLayersComputeTheSameDoraAsGraphs() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 31);
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.builder(model).config(DORA).attach();
        perturb(peft, 32);
        SDVariable graph = model.blocks().get(0).forward(x);
        INDArray in = input(DataType.DOUBLE, 33, 5);
        INDArray fromGraph = model.sd.output(Map.of("x", in), graph.name()).get(graph.name());

        LoraLayer layer = LoraAdapter.of(peft).layer("blocks.0");
        INDArray w = model.blocks().get(0).weight().getArr();
        DoraMagnitude eager = DoraMagnitude.start(null, null, w, layer.layout(), layer.weights());
        eager.array().assign(layer.magnitude());
        INDArray base = in.mmul(w).addiRowVector(model.sd.getVariable("blocks.0.bias").getArr());
        INDArray fromEager = base.add(eager.eagerDelta(in, w, layer.layout(), layer.weights()));
        assertTrue(maxDifference(fromGraph, fromEager) < 1e-12);
    }

    @Test
    void trainingChangesAdaptersAndMagnitudesButNotTheBase() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 21);
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, TwoLayerModel.OUT);
        PeftModel peft = PeftModel.builder(model).config(DORA).attach();
        sd.loss.meanSquaredError("loss", y, model.forward(x), null);
        Map<String, INDArray> baseBefore = new HashMap<>();
        sd.variables().stream().filter(v -> v.getArr() != null && v.name().matches("(blocks\\.\\d|head)\\.(weight|bias)"))
                .forEach(v -> baseBefore.put(v.name(), v.getArr().dup()));
        assertEquals(6, baseBefore.size());
        List<INDArray> magnitudesBefore = new ArrayList<>();
        LoraAdapter.of(peft).layerViews().forEach(layer -> magnitudesBefore.add(layer.magnitude().dup()));

        INDArray features = input(DataType.FLOAT, 22, 64);
        INDArray labels = Nd4j.math().sin(features.mmul(Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(23),
                TwoLayerModel.IN, TwoLayerModel.OUT).castTo(DataType.FLOAT).muli(2)));
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.05)).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
        var report = peft.train(config, new SingletonDataSetIterator(new DataSet(features, labels)), 60, new ProgressListener(null, 10));

        assertTrue(report.meanOfLast(5) < 0.7 * report.meanOfFirst(5), "loss fell from " + report.meanOfFirst(5) + " to " + report.meanOfLast(5));
        baseBefore.forEach((name, value) -> assertArrayEquals(value.data().asFloat(), sd.getVariable(name).getArr().data().asFloat(), 0f,
                name + " is frozen bit for bit"));
        List<LoraLayer> layers = LoraAdapter.of(peft).layerViews();
        for (int i = 0; i < layers.size(); i++) {
            assertFalse(magnitudesBefore.get(i).equals(layers.get(i).magnitude()), layers.get(i).path() + " magnitude trained");
        }
    }

    @Test
    void savesPeftsKeysAndConfigAndLoadsIntoAFreshModelIdentically() throws Exception {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 41);
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.builder(model).config(DORA).attach();
        perturb(peft, 42);
        SDVariable output = model.forward(x);
        Map<String, INDArray> feed = Map.of("x", input(DataType.FLOAT, 43, 6));
        float[] expected = model.sd.output(feed, output.name()).get(output.name()).data().asFloat();
        peft.save(dir);

        JsonNode config = new ObjectMapper().readTree(dir.resolve(AdapterCheckpoint.CONFIG_FILE).toFile());
        assertTrue(config.get("use_dora").asBoolean());
        assertEquals("LORA", config.get("peft_type").asText());
        Map<String, INDArray> tensors = SafetensorsFile.read(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE));
        INDArray magnitude = tensors.get("base_model.model.blocks.0.lora_magnitude_vector");
        assertNotNull(magnitude, "PEFT's key for the magnitude, without .weight; keys: " + tensors.keySet());
        assertArrayEquals(new long[] {TwoLayerModel.HIDDEN}, magnitude.shape());
        assertArrayEquals(new long[] {2, TwoLayerModel.IN}, tensors.get("base_model.model.blocks.0.lora_A.weight").shape());
        assertEquals(9, tensors.size(), "A, B and the magnitude of three layers");

        TwoLayerModel fresh = new TwoLayerModel(DataType.FLOAT, 41);
        SDVariable freshX = fresh.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        PeftModel loaded = PeftModel.fromPretrained(fresh, dir);
        assertTrue(LoraAdapter.of(loaded).layer("head").dora());
        SDVariable freshOutput = fresh.forward(freshX);
        assertArrayEquals(expected, fresh.sd.output(feed, freshOutput.name()).get(freshOutput.name()).data().asFloat(), 0f);
    }

    @Test
    void oneAdapterCannotMixDoraAndPlainLoraLayers() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 51);
        PeftException error = assertThrows(PeftException.class,
                () -> PeftModel.builder(model).config(LoraConfig.targeting("blocks.0").rank(2).dora(true)).attach());
        assertTrue(error.getMessage().contains("cannot mix DoRA and plain LoRA layers"), error.getMessage());
        assertTrue(error.getMessage().contains("DoRA on [blocks.0], plain LoRA on [blocks.1, head]"), error.getMessage());
        assertTrue(error.getMessage().contains("plain LoRA on [blocks.1, head]"), error.getMessage());
    }
}
