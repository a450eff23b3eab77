package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.testmodel.ClassifierModel;
import java.util.LinkedHashMap;
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

/** Several named adapters on one base: switching, disabling, combining, mixed batches, deleting, merging, training. */
class NamedAdaptersTest {

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static INDArray input(long seed, int rows) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        return Nd4j.rand(random, rows, ClassifierModel.IN).castTo(DataType.DOUBLE).subi(0.5).muli(2);
    }

    /** Gives every LoRA B of {@code adapter} random values (B = 0 would make every adapter the identity). */
    static void randomizeLora(PeftModel peft, String adapter, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        for (LoraLayer layer : LoraAdapter.of(peft, adapter).layerViews()) {
            INDArray b = layer.weights().b();
            b.assign(Nd4j.rand(random, b.shape()).castTo(b.dataType()).subi(0.5));
        }
    }

    /** Gives every parameter of {@code adapter}'s bottleneck modules random values (they exist once the graph is built). */
    static void randomizeBottleneck(SameDiff sd, String adapter, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        for (SDVariable variable : sd.variables()) {
            if (variable.name().contains(".adapters." + adapter + ".adapter_")) {
                INDArray value = variable.getArr();
                value.assign(Nd4j.rand(random, value.shape()).castTo(value.dataType()).subi(0.5));
            }
        }
    }

    private static double[] run(ClassifierModel model, SDVariable output, INDArray x) {
        return model.sd.output(Map.of("x", x), output.name()).get(output.name()).data().asDouble();
    }

    /** A model with LoRA adapters "a" (active) and "b", both with random B, and a graph built after both exist. */
    private record TwoLora(ClassifierModel model, PeftModel peft, SDVariable base, SDVariable output) {
        static TwoLora create() {
            ClassifierModel model = new ClassifierModel(DataType.DOUBLE, 1);
            SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, ClassifierModel.IN);
            SDVariable base = model.forward(x);
            PeftModel peft = PeftModel.builder(model).only(LoRA.class).adapterName("a").seed(1).attach();
            peft.addAdapter("b", AdapterOptions.defaults().withMethods(LoRA.class).withSeed(2));
            randomizeLora(peft, "a", 3);
            randomizeLora(peft, "b", 4);
            return new TwoLora(model, peft, base, model.forward(x));
        }

        double[] outputs() {
            return run(model, output, input(5, 7));
        }

        double[] baseOutputs() {
            return run(model, base, input(5, 7));
        }
    }

    @Test
    void switchingAToBToBaseAndBackGivesBitIdenticalOutputs() {
        TwoLora two = TwoLora.create();
        assertEquals(List.of("a", "b"), two.peft.adapterNames());
        assertEquals(List.of("a"), two.peft.activeAdapters());
        double[] a = two.outputs();
        two.peft.setAdapter("b");
        double[] b = two.outputs();
        double[] base;
        try (AdapterScope disabled = two.peft.disableAdapters()) {
            base = two.outputs();
        }
        two.peft.setAdapter("a");
        assertArrayEquals(a, two.outputs(), 0.0, "A again");
        two.peft.setAdapter("b");
        assertArrayEquals(b, two.outputs(), 0.0, "B again");
        assertArrayEquals(two.baseOutputs(), base, 0.0, "disabled: bit for bit the graph built before attaching");
        assertFalse(java.util.Arrays.equals(a, b), "the adapters differ");
        assertFalse(java.util.Arrays.equals(a, base), "adapter A changes the outputs");
    }

    @Test
    void disableAdaptersRestoresTheStateAfterAnExceptionAndAMerge() {
        TwoLora two = TwoLora.create();
        two.peft.setAdapters("a", "b");
        double[] both = two.outputs();
        IllegalStateException thrown = assertThrows(IllegalStateException.class, () -> {
            try (AdapterScope disabled = two.peft.disableAdapters()) {
                assertArrayEquals(two.baseOutputs(), two.outputs(), 0.0);
                throw new IllegalStateException("inside the block");
            }
        });
        assertEquals("inside the block", thrown.getMessage());
        assertEquals(List.of("a", "b"), two.peft.activeAdapters());
        assertArrayEquals(both, two.outputs(), 0.0, "both adapters on again");

        two.peft.setAdapter("a");
        double[] a = two.outputs();
        two.peft.merge("a");
        try (AdapterScope disabled = two.peft.disableAdapters()) {
            assertFalse(two.peft.isMerged(), "disabling unmerges, so that the weights are the base's");
            assertArrayEquals(two.baseOutputs(), two.outputs(), 1e-12);
        }
        assertTrue(two.peft.isMerged(), "and closing merges again");
        assertArrayEquals(a, two.outputs(), 1e-12, "merged A equals unmerged A");
    }

    @Test
    void twoActiveAdaptersAddTheirDeltas() {
        ClassifierModel model = new ClassifierModel(DataType.DOUBLE, 1);
        SDVariable h = model.sd.placeHolder("x", DataType.DOUBLE, -1, ClassifierModel.WIDTH);
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).adapterName("a").seed(1).attach();
        peft.addAdapter("b", AdapterOptions.defaults().withMethods(LoRA.class).withSeed(2));
        randomizeLora(peft, "a", 3);
        randomizeLora(peft, "b", 4);
        SDVariable layer = model.hidden().forward(h);
        INDArray feed = Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(7), 4, ClassifierModel.WIDTH).castTo(DataType.DOUBLE);
        double[] both = outputOf(model, layer, feed, peft, "a", "b");
        double[] onlyA = outputOf(model, layer, feed, peft, "a");
        double[] onlyB = outputOf(model, layer, feed, peft, "b");
        double[] none = outputOf(model, layer, feed, peft);
        for (int i = 0; i < both.length; i++) {
            assertEquals(none[i] + (onlyA[i] - none[i]) + (onlyB[i] - none[i]), both[i], 1e-12);
        }
        assertTrue(Math.abs(onlyA[0] - none[0]) > 1e-3 && Math.abs(onlyB[0] - none[0]) > 1e-3, "both deltas are non-zero");
    }

    private static double[] outputOf(ClassifierModel model, SDVariable output, INDArray x, PeftModel peft, String... active) {
        peft.setAdapters(active);
        return run(model, output, x);
    }

    /** The LoRA delta {@code s·A·B} of {@code adapter} on {@code layer}, in fp64. */
    private static INDArray delta(PeftModel peft, String adapter, String layer) {
        LoraLayer view = LoraAdapter.of(peft, adapter).layer(layer);
        return view.weights().a().castTo(DataType.DOUBLE).mmul(view.weights().b().castTo(DataType.DOUBLE)).muli(view.weights().scaling());
    }

    private static double relativeError(INDArray actual, INDArray expected) {
        return actual.sub(expected).norm2Number().doubleValue() / expected.norm2Number().doubleValue();
    }

    @Test
    void weightedCombinationsFollowPeftsLinearCatAndSvd() {
        TwoLora two = TwoLora.create();
        PeftModel peft = two.peft;

        CombinationReport single = peft.addWeightedAdapter("a-linear", Map.of("a", 1.0), Combination.LINEAR);
        for (String layer : List.of("encoder", "hidden")) {
            assertEquals(1.0, LoraAdapter.of(peft, "a-linear").layer(layer).weights().scaling(), 0.0, "scale 1: alpha = r");
            assertTrue(relativeError(delta(peft, "a-linear", layer), delta(peft, "a", layer)) < 1e-12, "linear of one adapter is it");
        }
        assertTrue(single.worstRelativeError() < 1e-12, "reported: " + single.relativeErrors());

        Map<String, Double> weights = new LinkedHashMap<>();
        weights.put("a", 0.7);
        weights.put("b", -0.3);
        CombinationReport cat = peft.addWeightedAdapter("cat", weights, Combination.CAT);
        assertEquals(List.of(4, 6), LoraAdapter.of(peft, "cat").layerViews().stream().map(LoraLayer::rank).toList(), "rank r1 + r2");
        for (String layer : List.of("encoder", "hidden")) {
            INDArray expected = delta(peft, "a", layer).muli(0.7).addi(delta(peft, "b", layer).muli(-0.3));
            assertTrue(relativeError(delta(peft, "cat", layer), expected) < 1e-12, "cat is exactly the weighted sum on " + layer);
        }
        assertTrue(cat.worstRelativeError() < 1e-12, "reported: " + cat.relativeErrors());

        CombinationReport svd = peft.addWeightedAdapter("svd", weights, Combination.SVD);
        assertEquals(List.of(2, 3), LoraAdapter.of(peft, "svd").layerViews().stream().map(LoraLayer::rank).toList(), "the largest source rank");
        for (String layer : List.of("encoder", "hidden")) {
            INDArray expected = delta(peft, "a", layer).muli(0.7).addi(delta(peft, "b", layer).muli(-0.3));
            double actual = relativeError(delta(peft, "svd", layer), expected);
            assertEquals(actual, svd.relativeErrors().get(layer), 1e-9, "the report states the truncation error of " + layer);
            assertTrue(actual > 1e-3, "a rank-" + LoraAdapter.of(peft, "svd").layer(layer).rank() + " sum of two adapters is truncated");
        }
        CombinationReport full = peft.addWeightedAdapter("svd-full", weights, Combination.SVD, 6);
        assertTrue(full.worstRelativeError() < 1e-9, "rank 2 r keeps the whole sum: " + full.relativeErrors());

        CombinationReport linear = peft.addWeightedAdapter("linear", weights, Combination.LINEAR);
        assertTrue(linear.worstRelativeError() > 1e-3, "linear of two adapters has cross terms, reported: " + linear.relativeErrors());
        PeftException ranks = assertThrows(PeftException.class, () -> peft.addWeightedAdapter("bad", Map.of("a", 1.0, "cat", 1.0),
                Combination.LINEAR));
        assertTrue(ranks.getMessage().contains("same rank") && ranks.getMessage().contains("CAT or SVD"), ranks.getMessage());

        // The combined adapter joins graphs built after it, and switches like any other.
        SDVariable x = two.model.sd.getVariable("x");
        SDVariable rebuilt = two.model.forward(x);
        peft.setAdapter("cat");
        double[] combined = run(two.model, rebuilt, input(5, 7));
        peft.setAdapter("a");
        assertFalse(java.util.Arrays.equals(combined, run(two.model, rebuilt, input(5, 7))));
    }

    @Test
    void aMixedBatchEqualsEachRowAloneWithItsAdapter() {
        ClassifierModel model = new ClassifierModel(DataType.DOUBLE, 1);
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, ClassifierModel.IN);
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).adapterName("a").seed(1).attach();
        peft.addAdapter("b", AdapterOptions.defaults().withMethods(LoRA.class).withSeed(2));
        peft.addAdapter("c", AdapterOptions.defaults().withMethods(Adapter.class).withSeed(3));
        SDVariable single = model.forward(x);
        SDVariable mixedOutput;
        MixedBatch mixed;
        try (MixedBatch batch = peft.mixedBatch()) {
            mixedOutput = model.forward(x);
            mixed = batch;
        }
        randomizeLora(peft, "a", 4);
        randomizeLora(peft, "b", 5);
        randomizeBottleneck(model.sd, "c", 6);

        List<String> rows = List.of("a", "b", MixedBatch.BASE, "c", "a", "b");
        INDArray features = input(7, rows.size());
        Map<String, INDArray> feed = new LinkedHashMap<>(mixed.feed(rows.toArray(new String[0])));
        feed.put("x", features);
        INDArray together = model.sd.output(feed, mixedOutput.name()).get(mixedOutput.name());
        for (int row = 0; row < rows.size(); row++) {
            INDArray alone;
            if (rows.get(row).equals(MixedBatch.BASE)) {
                try (AdapterScope base = peft.disableAdapters()) {
                    alone = model.sd.output(Map.of("x", features.getRow(row, true)), single.name()).get(single.name());
                }
            } else {
                peft.setAdapter(rows.get(row));
                alone = model.sd.output(Map.of("x", features.getRow(row, true)), single.name()).get(single.name());
            }
            assertArrayEquals(alone.data().asDouble(), together.getRow(row, true).data().asDouble(), 1e-12, "row " + row + " " + rows.get(row));
        }
        PeftException unknown = assertThrows(PeftException.class, () -> mixed.rows("a", "nope"));
        assertTrue(unknown.getMessage().contains("'nope'") && unknown.getMessage().contains("__base__"), unknown.getMessage());
        peft.merge("a");
        PeftException merged = assertThrows(PeftException.class, () -> mixed.rows("b"));
        assertTrue(merged.getMessage().contains("unmerge()"), merged.getMessage());
    }

    @Test
    void deletingAnAdapterSwitchesItOffAndHandsOverAsPeftDoes() {
        TwoLora two = TwoLora.create();
        two.peft.setAdapter("b");
        double[] b = two.outputs();
        two.peft.setAdapter("a");
        two.peft.deleteAdapter("a");
        assertEquals(List.of("b"), two.peft.adapterNames());
        assertEquals(List.of("b"), two.peft.activeAdapters(), "the first remaining adapter takes over, as in PEFT");
        assertArrayEquals(b, two.outputs(), 0.0, "a graph built with A serves B without it");
        PeftException gone = assertThrows(PeftException.class, () -> two.peft.setAdapter("a"));
        assertTrue(gone.getMessage().contains("No adapter named 'a'") && gone.getMessage().contains("[b]"), gone.getMessage());
        two.peft.addAdapter("a", AdapterOptions.defaults().withMethods(LoRA.class));
        assertEquals(List.of("b", "a"), two.peft.adapterNames(), "a deleted name can be used again");
    }

    @Test
    void mergingOneAdapterAndMergeAndUnloadLeaveThePlainBase() {
        TwoLora two = TwoLora.create();
        double[] a = two.outputs();
        two.peft.merge("a");
        assertArrayEquals(a, two.outputs(), 1e-12, "a graph built before the merge follows it");
        two.peft.unmerge();
        assertArrayEquals(a, two.outputs(), 1e-12);

        Object root = two.peft.mergeAndUnload();
        assertTrue(root == two.model);
        SDVariable deployment = two.model.forward(two.model.sd.getVariable("x"));
        assertArrayEquals(a, run(two.model, deployment, input(5, 7)), 1e-12, "the merged base alone computes adapter A");
        assertTrue(two.model.sd.getVariable("hidden.weight").getVariableType() == org.nd4j.autodiff.samediff.VariableType.VARIABLE,
                "base weights are ordinary variables again");
        assertThrows(PeftException.class, () -> two.peft.setAdapter("a"), "unloaded");
        PeftModel again = PeftModel.builder(two.model).only(LoRA.class).attach();
        assertEquals(List.of("default"), again.adapterNames(), "the layers are free for a new PeftModel");
    }

    @Test
    void trainingChangesOnlyTheActiveAdapterAndItsOwnHead() {
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, ClassifierModel.IN);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, ClassifierModel.CLASSES);
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).adapterName("a").alsoTrain("classifier").attach();
        peft.addAdapter("b", AdapterOptions.defaults().withMethods(LoRA.class).withSeed(2).withAlsoTrain("classifier"));
        sd.loss.meanSquaredError("loss", y, model.forward(x), null);
        INDArray baseHead = model.classifier().weight().getArr().dup();
        INDArray aBefore = LoraAdapter.of(peft, "a").layer("hidden").weights().a().dup();
        INDArray bBefore = LoraAdapter.of(peft, "b").layer("hidden").weights().a().dup();
        DataSet data = new DataSet(Nd4j.rand(DataType.FLOAT, 32, ClassifierModel.IN), Nd4j.rand(DataType.FLOAT, 32, ClassifierModel.CLASSES));
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.05)).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();

        peft.setAdapter("b");
        peft.train(config, new SingletonDataSetIterator(data), 20, new ProgressListener(null, 10));
        INDArray headB = model.classifier().weight().getArr().dup();
        assertFalse(headB.equals(baseHead), "b's head trained");
        assertFalse(bBefore.equals(LoraAdapter.of(peft, "b").layer("hidden").weights().a()), "b trained");
        assertTrue(aBefore.equals(LoraAdapter.of(peft, "a").layer("hidden").weights().a()), "a did not");

        peft.setAdapter("a");
        assertTrue(model.classifier().weight().getArr().equals(baseHead), "a's head is still the base head");
        try (AdapterScope base = peft.disableAdapters()) {
            assertTrue(model.classifier().weight().getArr().equals(baseHead), "disabled: the base head");
        }
        peft.setAdapter("b");
        assertTrue(model.classifier().weight().getArr().equals(headB), "b's head comes back with b");
        assertEquals(LoraAdapter.of(peft, "b").parameterCount() + ClassifierModel.WIDTH * ClassifierModel.CLASSES + ClassifierModel.CLASSES,
                peft.parameterCount().trainable(), "trainable: the active adapter and its head");
    }
}
