package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.annotations.IA3;
import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.ia3.Ia3Adapter;
import io.peft4j.runtime.ia3.Ia3Config;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.EagerLinear;
import io.peft4j.runtime.testmodel.TestLinear;
import io.peft4j.runtime.testmodel.VendorModel;
import java.nio.file.Path;
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

/** (IA)³: output and input vectors, PEFT's keys and config, merge, training and name-based selection. */
class Ia3Test {

    @TempDir
    Path dir;

    @BeforeAll
    static void actAsIfTheAgentWereInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    /** {@code x [batch, 6] → tanh(key(x) ⊙ value(x)) [batch, 5] → output [batch, 3]}, IA³ as PEFT's recipe puts it. */
    static final class Block {
        final SameDiff sd = SameDiff.create();
        @IA3
        final TestLinear key;
        @IA3
        final TestLinear value;
        @IA3(feedforward = true)
        final TestLinear output;

        Block(DataType dtype, long seed) {
            Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
            key = new TestLinear(sd, "key", 6, 5, dtype, random);
            value = new TestLinear(sd, "value", 6, 5, dtype, random);
            output = new TestLinear(sd, "output", 5, 3, dtype, random);
        }

        SDVariable forward(SDVariable x) {
            return output.forward(sd.math.tanh(key.forward(x).mul(value.forward(x))));
        }
    }

    private static PeftModel ia3(Object model) {
        return PeftModel.builder(model).only(IA3.class).attach();
    }

    private static INDArray input(DataType dtype, long seed, int rows) {
        return Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(seed), rows, 6).castTo(dtype).subi(0.5).muli(2);
    }

    private static void perturb(Ia3Adapter adapter, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        for (String layer : adapter.layers()) {
            INDArray l = adapter.vector(layer);
            l.assign(Nd4j.rand(random, l.shape()).castTo(l.dataType()).addi(0.5));
        }
    }

    private static double maxDifference(INDArray expected, INDArray actual) {
        return Transforms.abs(expected.sub(actual)).maxNumber().doubleValue();
    }

    private static INDArray bias(Block block, String layer) {
        return block.sd.getVariable(layer + ".bias").getArr();
    }

    @Test
    void vectorsStartAtOnesSoTheModelStartsUnchanged() {
        Block block = new Block(DataType.FLOAT, 1);
        SDVariable x = block.sd.placeHolder("x", DataType.FLOAT, -1, 6);
        SDVariable base = block.forward(x);
        PeftModel peft = ia3(block);
        SDVariable adapted = block.forward(x);
        Map<String, INDArray> out = block.sd.output(Map.of("x", input(DataType.FLOAT, 2, 8)), base.name(), adapted.name());
        assertArrayEquals(out.get(base.name()).data().asFloat(), out.get(adapted.name()).data().asFloat(), 0f);
        Ia3Adapter adapter = Ia3Adapter.of(peft, "default");
        assertEquals(List.of("key", "value", "output"), adapter.layers());
        assertEquals(5, adapter.vector("key").length(), "an output vector has out elements");
        assertEquals(5, adapter.vector("output").length(), "a feed-forward vector has in elements");
        assertEquals(15, peft.parameterCount().trainable());
        assertEquals(Nd4j.ones(DataType.FLOAT, 5), adapter.vector("value"));
    }

    @Test
    void outputVectorsScaleTheOutputAndFeedForwardVectorsTheInput() {
        Block block = new Block(DataType.DOUBLE, 3);
        SDVariable x = block.sd.placeHolder("x", DataType.DOUBLE, -1, 6);
        Ia3Adapter adapter = Ia3Adapter.of(ia3(block), "default");
        perturb(adapter, 4);
        SDVariable adapted = block.forward(x);
        INDArray in = input(DataType.DOUBLE, 5, 4);
        INDArray actual = block.sd.output(Map.of("x", in), adapted.name()).get(adapted.name());

        INDArray key = in.mmul(block.key.weight().getArr()).addiRowVector(bias(block, "key")).muliRowVector(adapter.vector("key"));
        INDArray value = in.mmul(block.value.weight().getArr()).addiRowVector(bias(block, "value")).muliRowVector(adapter.vector("value"));
        INDArray hidden = Transforms.tanh(key.mul(value)).muliRowVector(adapter.vector("output"));
        INDArray expected = hidden.mmul(block.output.weight().getArr()).addiRowVector(bias(block, "output"));
        assertTrue(maxDifference(expected, actual) < 1e-12, "difference " + maxDifference(expected, actual));
    }

    @Test
    void gradientsOfTheVectorsMatchFiniteDifferences() {
        Block block = new Block(DataType.DOUBLE, 7);
        SDVariable x = block.sd.placeHolder("x", DataType.DOUBLE, -1, 6);
        Ia3Adapter adapter = Ia3Adapter.of(ia3(block), "default");
        perturb(adapter, 8);
        SDVariable loss = block.sd.math.square(block.forward(x)).sum().rename("loss");
        block.sd.setLossVariables(loss.name());
        double worst = FiniteDifferences.worstRelativeError(block.sd, Map.of("x", input(DataType.DOUBLE, 9, 4)), adapter.variableNames(), "loss");
        assertEquals(3, adapter.variableNames().size());
        assertTrue(worst < 1e-6, "worst relative gradient error " + worst);
    }

    @Test
    void mergedForwardEqualsUnmergedAndUnmergeRestoresWeightsAndBiases() {
        Block block = new Block(DataType.FLOAT, 11);
        SDVariable x = block.sd.placeHolder("x", DataType.FLOAT, -1, 6);
        PeftModel peft = ia3(block);
        perturb(Ia3Adapter.of(peft, "default"), 12);
        SDVariable unmergedGraph = block.forward(x);
        Map<String, INDArray> feed = Map.of("x", input(DataType.FLOAT, 13, 16));
        INDArray unmerged = block.sd.output(feed, unmergedGraph.name()).get(unmergedGraph.name());
        Map<String, INDArray> before = new HashMap<>();
        for (String name : List.of("key.weight", "key.bias", "output.weight", "output.bias")) {
            before.put(name, block.sd.getVariable(name).getArr().dup());
        }

        peft.merge();
        SDVariable mergedGraph = block.forward(x);
        Map<String, INDArray> after = block.sd.output(feed, unmergedGraph.name(), mergedGraph.name());
        assertTrue(maxDifference(unmerged, after.get(mergedGraph.name())) < 1e-5);
        assertTrue(maxDifference(unmerged, after.get(unmergedGraph.name())) < 1e-5, "a graph built before the merge does not scale twice");
        assertFalse(before.get("key.bias").equals(bias(block, "key")), "an output vector scales the bias too");
        assertEquals(before.get("output.bias"), bias(block, "output"), "a feed-forward vector leaves the bias alone");

        peft.unmerge();
        before.forEach((name, value) -> assertTrue(maxDifference(value, block.sd.getVariable(name).getArr()) < 1e-6, name + " restored"));
        assertTrue(maxDifference(unmerged, block.sd.output(feed, unmergedGraph.name()).get(unmergedGraph.name())) < 1e-5);
    }

    @Test
    void trainingChangesOnlyTheVectors() {
        Block block = new Block(DataType.FLOAT, 21);
        SameDiff sd = block.sd;
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, 6);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, 3);
        PeftModel peft = ia3(block);
        sd.loss.meanSquaredError("loss", y, block.forward(x), null);
        Map<String, INDArray> base = new HashMap<>();
        sd.variables().stream().filter(v -> v.getArr() != null && v.name().matches("(key|value|output)\\.(weight|bias)"))
                .forEach(v -> base.put(v.name(), v.getArr().dup()));
        assertEquals(6, base.size());
        INDArray features = input(DataType.FLOAT, 22, 64);
        INDArray labels = Nd4j.math().sin(features.mmul(Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(23), 6, 3)
                .castTo(DataType.FLOAT).muli(2)));
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.05)).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
        TrainingReport report = peft.train(config, new SingletonDataSetIterator(new DataSet(features, labels)), 60, new ProgressListener(null, 10));

        assertTrue(report.meanOfLast(5) < report.meanOfFirst(5), "loss fell from " + report.meanOfFirst(5) + " to " + report.meanOfLast(5));
        base.forEach((name, value) -> assertArrayEquals(value.data().asFloat(), sd.getVariable(name).getArr().data().asFloat(), 0f,
                name + " is frozen bit for bit"));
        Ia3Adapter adapter = Ia3Adapter.of(peft, "default");
        adapter.layers().forEach(layer -> assertFalse(Nd4j.ones(DataType.FLOAT, adapter.vector(layer).length()).equals(adapter.vector(layer)),
                layer + " trained"));
    }

    @Test
    void savesPeftsKeysShapesAndConfigAndLoadsIdentically() throws Exception {
        Block block = new Block(DataType.FLOAT, 31);
        SDVariable x = block.sd.placeHolder("x", DataType.FLOAT, -1, 6);
        PeftModel peft = ia3(block);
        perturb(Ia3Adapter.of(peft, "default"), 32);
        SDVariable output = block.forward(x);
        Map<String, INDArray> feed = Map.of("x", input(DataType.FLOAT, 33, 5));
        float[] expected = block.sd.output(feed, output.name()).get(output.name()).data().asFloat();
        peft.save(dir);

        JsonNode config = new ObjectMapper().readTree(dir.resolve(AdapterCheckpoint.CONFIG_FILE).toFile());
        assertEquals("IA3", config.get("peft_type").asText());
        assertEquals("[\"key\",\"output\",\"value\"]", config.get("target_modules").toString());
        assertEquals("[\"output\"]", config.get("feedforward_modules").toString());
        assertTrue(config.get("init_ia3_weights").asBoolean());
        Map<String, INDArray> tensors = SafetensorsFile.read(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE));
        assertEquals(3, tensors.size(), tensors.keySet().toString());
        assertArrayEquals(new long[] {5, 1}, tensors.get("base_model.model.key.ia3_l").shape(), "PEFT's [out, 1]");
        assertArrayEquals(new long[] {1, 5}, tensors.get("base_model.model.output.ia3_l").shape(), "PEFT's [1, in] for feed-forward");

        Block fresh = new Block(DataType.FLOAT, 31);
        SDVariable freshX = fresh.sd.placeHolder("x", DataType.FLOAT, -1, 6);
        PeftModel.fromPretrained(fresh, dir);
        SDVariable freshOutput = fresh.forward(freshX);
        assertArrayEquals(expected, fresh.sd.output(feed, freshOutput.name()).get(freshOutput.name()).data().asFloat(), 0f);
    }

    @Test
    void layersSelectedByNameInCodeWithoutAnnotations() {
        VendorModel model = new VendorModel(1);
        PeftModel peft = PeftModel.builder(model).config(Ia3Config.targeting("query", "value", "ffn").feedforward("ffn")).attach();
        Ia3Adapter adapter = Ia3Adapter.of(peft, "default");
        assertEquals(List.of("encoder.layers.0.query", "encoder.layers.0.value", "encoder.layers.0.ffn", "encoder.layers.1.query",
                "encoder.layers.1.value", "encoder.layers.1.ffn"), adapter.layers());
        assertTrue(adapter.feedforward("encoder.layers.1.ffn"));
        assertFalse(adapter.feedforward("encoder.layers.1.query"));

        PeftException unmatched = assertThrows(PeftException.class,
                () -> PeftModel.builder(new VendorModel(1)).config(Ia3Config.targeting("querry")).attach());
        assertTrue(unmatched.getMessage().contains("Ia3Config target_modules entry 'querry' matches no layer"), unmatched.getMessage());
        assertTrue(unmatched.getMessage().contains("encoder.layers.0.query"), unmatched.getMessage());

        IllegalArgumentException notSubset = assertThrows(IllegalArgumentException.class,
                () -> Ia3Config.targeting("query", "value").feedforward("ffn"));
        assertTrue(notSubset.getMessage().contains("must be a subset of target_modules"), notSubset.getMessage());
    }

    /** A linear layer woven as the agent weaves it: both hooks, the input rescaled on entry. No annotation: selected by name. */
    static final class WovenLinear {
        final SDVariable weight;
        final SDVariable bias;

        WovenLinear(SameDiff sd, String name, int in, int out, Random random) {
            weight = sd.var(name + ".weight", Nd4j.rand(random, in, out).castTo(DataType.DOUBLE).subi(0.5));
            bias = sd.var(name + ".bias", Nd4j.rand(random, 1, out).castTo(DataType.DOUBLE).subi(0.5).reshape(out));
        }

        public SDVariable forward(SDVariable x) {
            x = (SDVariable) io.peft4j.runtime.bridge.ForwardDispatcher.beforeForward(this, x);
            SDVariable y = x.mmul(weight).add(bias);
            return (SDVariable) io.peft4j.runtime.bridge.ForwardDispatcher.afterForward(this, x, y);
        }
    }

    static final class WovenBlock {
        final SameDiff sd = SameDiff.create();
        final WovenLinear key;
        final WovenLinear output;

        WovenBlock(long seed) {
            Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
            key = new WovenLinear(sd, "key", 6, 5, random);
            output = new WovenLinear(sd, "output", 5, 3, random);
        }

        SDVariable forward(SDVariable x) {
            return output.forward(sd.math.tanh(key.forward(x)));
        }
    }

    /** Under the agent a feed-forward vector rescales the input on entry, as PEFT does: no extra product with the weight. */
    @Test
    void underTheAgentTheInputIsRescaledOnEntryWithoutAnExtraProduct() {
        WovenBlock block = new WovenBlock(51);
        SDVariable x = block.sd.placeHolder("x", DataType.DOUBLE, -1, 6);
        PeftModel peft = PeftModel.builder(block).config(Ia3Config.targeting("key", "output").feedforward("output")).attach();
        Ia3Adapter adapter = Ia3Adapter.of(peft, "default");
        perturb(adapter, 52);
        SDVariable out = block.forward(x);
        INDArray in = input(DataType.DOUBLE, 53, 4);
        INDArray actual = block.sd.output(Map.of("x", in), out.name()).get(out.name());

        INDArray key = in.mmul(block.key.weight.getArr()).addiRowVector(block.key.bias.getArr()).muliRowVector(adapter.vector("key"));
        INDArray expected = Transforms.tanh(key).muliRowVector(adapter.vector("output")).mmul(block.output.weight.getArr())
                .addiRowVector(block.output.bias.getArr());
        assertTrue(maxDifference(expected, actual) < 1e-12, "difference " + maxDifference(expected, actual));
        long products = block.sd.getOps().values().stream().filter(op -> op.getOp().opName().equals("matmul")).count();
        assertEquals(2, products, "one product per layer");

        SDVariable loss = block.sd.math.square(out).sum().rename("loss");
        block.sd.setLossVariables(loss.name());
        double worst = FiniteDifferences.worstRelativeError(block.sd, Map.of("x", in), adapter.variableNames(), "loss");
        assertTrue(worst < 1e-6, "worst relative gradient error " + worst);
    }

    static final class EagerModel {
        @IA3(feedforward = true)
        final EagerLinear up = new EagerLinear(Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(41), 7, 9).castTo(DataType.DOUBLE));
        @IA3
        final EagerLinear down = new EagerLinear(Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(42), 4, 7).castTo(DataType.DOUBLE));

        INDArray forward(INDArray x) {
            return down.forward(up.forward(x));
        }
    }

    @Test
    void eagerLayersInOutInLayoutScaleAndMerge() {
        EagerModel model = new EagerModel();
        INDArray x = Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(43), 3, 9).castTo(DataType.DOUBLE);
        PeftModel peft = ia3(model);
        Ia3Adapter adapter = Ia3Adapter.of(peft, "default");
        assertEquals(9, adapter.vector("up").length());
        assertEquals(4, adapter.vector("down").length());
        perturb(adapter, 44);
        INDArray adapted = model.forward(x).dup();
        INDArray expected = x.mulRowVector(adapter.vector("up")).mmul(model.up.weight().transpose()).mmul(model.down.weight().transpose())
                .muliRowVector(adapter.vector("down"));
        assertTrue(maxDifference(expected, adapted) < 1e-12, "difference " + maxDifference(expected, adapted));
        peft.merge();
        assertTrue(maxDifference(adapted, model.forward(x)) < 1e-12);
    }
}
