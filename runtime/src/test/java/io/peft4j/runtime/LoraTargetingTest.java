package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraConfig;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import io.peft4j.runtime.testmodel.TwoMatrixLayer;
import io.peft4j.runtime.testmodel.VendorModel;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/** LoRA on layers selected by name, on model code that carries no peft4j annotation and no generated accessor. */
class LoraTargetingTest {

    @TempDir
    Path dir;

    @BeforeAll
    static void actAsIfTheAgentWereInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static List<String> adapted(PeftModel peft) {
        return LoraAdapter.of(peft).layerViews().stream().map(LoraLayer::path).toList();
    }

    /** Rank 2: the test layers are 6 wide, below PEFT's default rank 8. */
    private static PeftModel attach(VendorModel model, LoraConfig config) {
        return PeftModel.builder(model).config(config.rank(2)).attach();
    }

    private static INDArray ids(long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        return Nd4j.rand(random, 5, VendorModel.LENGTH).muli(VendorModel.VOCABULARY).castTo(DataType.INT).castTo(DataType.FLOAT);
    }

    private static INDArray run(VendorModel model, SDVariable out, INDArray ids) {
        return model.sd.output(Map.of("ids", ids), out.name()).get(out.name());
    }

    private static void randomizeB(PeftModel peft) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(3);
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            INDArray b = layer.weights().b();
            b.assign(Nd4j.rand(random, b.shape()).castTo(b.dataType()).subi(0.5));
        }
    }

    @Test
    void listEntriesSelectPathsTheyEqualOrEndWith() {
        assertEquals(List.of("encoder.layers.0.query", "encoder.layers.0.value", "encoder.layers.1.query", "encoder.layers.1.value"),
                adapted(attach(new VendorModel(1), LoraConfig.targeting("query", "value"))));
        assertEquals(List.of("encoder.layers.0.value", "encoder.layers.1.query"),
                adapted(attach(new VendorModel(1), LoraConfig.targeting("encoder.layers.1.query", "encoder.layers.0.value"))));
    }

    @Test
    void aRegularExpressionMustMatchTheWholePath() {
        assertEquals(List.of("encoder.layers.1.query", "encoder.layers.1.ffn"),
                adapted(attach(new VendorModel(1), LoraConfig.targetingRegex("encoder\\.layers\\.1\\.(query|ffn)"))));
        PeftException partial = assertThrows(PeftException.class,
                () -> attach(new VendorModel(1), LoraConfig.targetingRegex("query")));
        assertTrue(partial.getMessage().contains("'query' (a regular expression, matched against whole layer paths) matches no layer"),
                partial.getMessage());
    }

    @Test
    void allLinearTakesEveryMatrixLayerButEmbeddingsAndTheHead() {
        assertEquals(List.of("encoder.layers.0.query", "encoder.layers.0.value", "encoder.layers.0.ffn", "encoder.layers.1.query", "encoder.layers.1.value", "encoder.layers.1.ffn"),
                adapted(attach(new VendorModel(1), LoraConfig.allLinear())));
    }

    @Test
    void excludeModulesWinsOverTargets() {
        assertEquals(List.of("encoder.layers.0.value", "encoder.layers.1.query", "encoder.layers.1.value"),
                adapted(attach(new VendorModel(1), LoraConfig.targeting("query", "value").exclude("encoder.layers.0.query"))));
        assertEquals(List.of("encoder.layers.0.query", "encoder.layers.1.query"),
                adapted(attach(new VendorModel(1), LoraConfig.allLinear().excludeRegex(".*\\.(value|ffn)"))));
    }

    @Test
    void layersToTransformKeepsTheNamedLayerIndices() {
        assertEquals(List.of("encoder.layers.1.query", "encoder.layers.1.value"),
                adapted(attach(new VendorModel(1), LoraConfig.targeting("query", "value").layersToTransform(1))));
        assertEquals(List.of("encoder.layers.0.ffn"),
                adapted(attach(new VendorModel(1), LoraConfig.targeting("ffn").layersToTransform(0).layersPattern("layers"))));
        PeftException none = assertThrows(PeftException.class,
                () -> attach(new VendorModel(1), LoraConfig.targeting("ffn").layersToTransform(5)));
        assertTrue(none.getMessage().contains("layers_to_transform [5]") && none.getMessage().contains("encoder.layers.0.ffn")
                && none.getMessage().contains("a root-level 'layers.3.query' has none"), none.getMessage());
    }

    @Test
    void aTargetThatMatchesNothingListsTheClosestLayers() {
        PeftException error = assertThrows(PeftException.class,
                () -> attach(new VendorModel(1), LoraConfig.targeting("query", "vlaue")));
        assertTrue(error.getMessage().startsWith("LoraConfig target_modules entry 'vlaue' matches no layer of the model"), error.getMessage());
        assertTrue(error.getMessage().contains("closest layer paths are [encoder.layers.0.value, encoder.layers.1.value"), error.getMessage());
    }

    @Test
    void aTargetOnALayerLoraCannotAdaptIsAnError() {
        PeftException block = assertThrows(PeftException.class, () -> attach(new VendorModel(1), LoraConfig.targeting("encoder.layers.0")));
        assertTrue(block.getMessage().contains("selects 'encoder.layers.0' (" + VendorModel.Block.class.getName() + "), which LoRA cannot adapt: "
                + "it has no field holding a matrix"), block.getMessage());
        PeftException two = assertThrows(PeftException.class,
                () -> PeftModel.builder(new Holder(new TwoMatrixLayer())).config(LoraConfig.targeting("layer")).attach());
        assertTrue(two.getMessage().contains("it has 2 matrix fields [gate, up]; mark the one LoRA adapts with @Weight"), two.getMessage());
    }

    @Test
    void adaptsUnprocessedCodeExactlyAtInitAndMergesByReflection() {
        VendorModel model = new VendorModel(1);
        SDVariable ids = model.sd.placeHolder("ids", DataType.FLOAT, -1, VendorModel.LENGTH);
        SDVariable base = model.forward(ids);
        INDArray input = ids(7);
        INDArray before = run(model, base, input);
        PeftModel peft = attach(model, LoraConfig.allLinear().rank(2).alpha(4));
        SDVariable adapted = model.forward(ids);
        assertArrayEquals(before.data().asFloat(), run(model, adapted, input).data().asFloat(), "B = 0: the adapted model is the base");
        randomizeB(peft);
        INDArray unmerged = run(model, adapted, input);
        assertTrue(unmerged.sub(before).amaxNumber().doubleValue() > 1e-3, "the branches change the output");
        peft.merge();
        INDArray merged = run(model, base, input);
        assertTrue(merged.sub(unmerged).amaxNumber().doubleValue() < 1e-5, "merged ≡ unmerged: " + merged.sub(unmerged).amaxNumber());
        peft.unmerge();
        assertTrue(run(model, base, input).sub(before).amaxNumber().doubleValue() < 1e-6, "unmerge restores the base");
    }

    @Test
    void aRankAboveTheLayerWidthNamesTheConfig() {
        PeftException error = assertThrows(PeftException.class,
                () -> PeftModel.builder(new VendorModel(1)).config(LoraConfig.targeting("query")).attach());
        assertTrue(error.getMessage().startsWith("LoraConfig gives layer 'encoder.layers.0.query' rank 8 (Dense, in = 6, out = 6): rank must "
                + "not exceed min(in, out) = 6"), error.getMessage());
    }

    @Test
    void theConfigWinsWhereItAndAnAnnotationNameTheSameLayer() {
        PeftModel peft = PeftModel.builder(new TwoLayerModel(DataType.FLOAT, 1))
                .config(LoraConfig.targeting("head").rank(3).alpha(6).exclude("blocks.0")).attach();
        List<LoraLayer> layers = LoraAdapter.of(peft).layerViews();
        assertEquals(List.of("blocks.1", "head"), layers.stream().map(LoraLayer::path).toList(), "blocks.0's annotation is excluded");
        assertEquals(List.of(2, 3), layers.stream().map(LoraLayer::rank).toList(), "head: the config's rank 3, not @LoRA(rank = 1)");
    }

    @Test
    void rankAndAlphaPatternsAndTheSavedConfigRoundTrip() throws Exception {
        VendorModel model = new VendorModel(1);
        SDVariable ids = model.sd.placeHolder("ids", DataType.FLOAT, -1, VendorModel.LENGTH);
        PeftModel peft = attach(model, LoraConfig.targeting("query", "value").alpha(4)
                .rankPattern(Map.of("encoder.layers.1.value", 3)).alphaPattern(Map.of("value", 9.0)));
        assertEquals(List.of(2, 2, 2, 3), LoraAdapter.of(peft).layerViews().stream().map(LoraLayer::rank).toList());
        assertEquals(List.of(4.0, 9.0, 4.0, 9.0), LoraAdapter.of(peft).layerViews().stream().map(LoraLayer::alpha).toList());
        randomizeB(peft);
        INDArray expected = run(model, model.forward(ids), ids(9));
        peft.save(dir);
        JsonNode config = new ObjectMapper().readTree(dir.resolve("adapter_config.json").toFile());
        assertEquals(2, config.get("r").intValue());
        assertEquals(3, config.get("rank_pattern").get("encoder.layers.1.value").intValue());

        VendorModel fresh = new VendorModel(1);
        SDVariable freshIds = fresh.sd.placeHolder("ids", DataType.FLOAT, -1, VendorModel.LENGTH);
        PeftModel loaded = PeftModel.fromPretrained(fresh, dir);
        assertEquals(adapted(peft), adapted(loaded));
        assertArrayEquals(expected.data().asFloat(), run(fresh, fresh.forward(freshIds), ids(9)).data().asFloat());
    }

    @Test
    void anOutInLayoutAdaptsTransposedWeights() {
        PeftModel peft = PeftModel.builder(new Holder(new TransposedDense()))
                .config(LoraConfig.targeting("layer").rank(2).weightLayout(WeightLayout.OUT_IN)).attach();
        LoraLayer layer = LoraAdapter.of(peft).layerViews().get(0);
        assertEquals(List.of(5L, 3L), List.of(layer.in(), layer.out()), "kernel [3, 5] read as [out, in]");
    }

    /** Holds one layer, so that it has a path. */
    static final class Holder {
        final Object layer;

        Holder(Object layer) {
            this.layer = layer;
        }
    }

    /** {@code y = x · kernelᵀ}, {@code kernel [out = 3, in = 5]}, PyTorch's layout. */
    static final class TransposedDense {
        final org.nd4j.autodiff.samediff.SameDiff sd = org.nd4j.autodiff.samediff.SameDiff.create();
        final SDVariable kernel = sd.var("kernel", Nd4j.ones(DataType.FLOAT, 3, 5));

        public SDVariable forward(SDVariable x) {
            return (SDVariable) ForwardDispatcher.afterForward(this, x, x.mmul(kernel.permute(1, 0)));
        }
    }
}
