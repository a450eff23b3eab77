package io.peft4j.runtime.lora;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.annotations.LoraInit;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.EagerLinear;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.EnumSource;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/** PEFT's init_lora_weights choices: each starts the model unchanged; PiSSA and OLoRA factor the weight. */
class LoraInitTest {

    @TempDir
    Path dir;

    @BeforeAll
    static void actAsIfTheAgentWereInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static LoraConfig config(LoraInit init) {
        return LoraConfig.targeting("blocks.0", "blocks.1", "head").rank(2).alpha(4).init(init);
    }

    private static INDArray input(long seed, int rows) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        return Nd4j.rand(random, rows, TwoLayerModel.IN).castTo(DataType.DOUBLE).subi(0.5).muli(2);
    }

    private static double maxDifference(INDArray expected, INDArray actual) {
        return Transforms.abs(expected.sub(actual)).maxNumber().doubleValue();
    }

    @ParameterizedTest
    @EnumSource(LoraInit.class)
    void everyInitialisationStartsTheModelUnchanged(LoraInit init) {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 1);
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, TwoLayerModel.IN);
        SDVariable base = model.forward(x);
        Map<String, INDArray> feed = Map.of("x", input(2, 8));
        INDArray before = model.sd.output(feed, base.name()).get(base.name());
        PeftModel peft = PeftModel.builder(model).config(config(init)).attach();
        SDVariable adapted = model.forward(x);
        INDArray after = model.sd.output(feed, adapted.name()).get(adapted.name());
        assertTrue(maxDifference(before, after) < 1e-12, init + ": " + maxDifference(before, after));
        LoraAdapter.of(peft).layerViews().forEach(layer -> assertEquals(init, layer.init()));
        boolean factorsTheWeight = init.replacesBaseWeight();
        LoraLayer first = LoraAdapter.of(peft).layer("blocks.0");
        assertEquals(factorsTheWeight, first.weights().b().amaxNumber().doubleValue() > 0, "B is zero unless the weight is factored");
    }

    @Test
    void gaussianDrawsAWithStandardDeviationOneOverRank() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 3);
        PeftModel peft = PeftModel.builder(model).config(LoraConfig.targeting("blocks.0", "blocks.1", "head").rank(2).init(LoraInit.GAUSSIAN))
                .attach();
        INDArray all = Nd4j.concat(0, LoraAdapter.of(peft).layerViews().stream().map(layer -> layer.weights().a().reshape(-1)).toArray(INDArray[]::new));
        double std = all.stdNumber().doubleValue();
        assertTrue(std > 0.35 && std < 0.65, "std of " + all.length() + " draws should be near 1/r = 0.5, got " + std);
        assertTrue(all.amaxNumber().doubleValue() > 1 / Math.sqrt(TwoLayerModel.IN), "not kaiming-uniform's ±1/√in");
    }

    /** W = U·S·Vᵀ: s·A·B is the top-r part, the residual is orthogonal to it, and AᵀA = B·Bᵀ = S_r / s. */
    @Test
    void pissaTakesTheTopSingularTripletsAndLeavesTheResidualInTheWeight() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 5);
        INDArray original = model.blocks().get(0).weight().getArr().dup(); // [in 6, out 5]
        PeftModel peft = PeftModel.builder(model).config(config(LoraInit.PISSA)).attach();
        LoraLayer layer = LoraAdapter.of(peft).layer("blocks.0");
        INDArray a = layer.weights().a();
        INDArray b = layer.weights().b();
        double s = layer.weights().scaling();
        INDArray residual = model.blocks().get(0).weight().getArr();

        assertTrue(maxDifference(original, residual.add(a.mmul(b).muli(s))) < 1e-12, "W = residual + s·A·B");
        INDArray ata = a.transpose().mmul(a);
        assertTrue(maxDifference(ata, b.mmul(b.transpose())) < 1e-12, "AᵀA = B·Bᵀ (both √S_r')");
        assertTrue(Math.abs(ata.getDouble(0, 1)) < 1e-12, "diagonal");
        assertTrue(ata.getDouble(0, 0) >= ata.getDouble(1, 1), "descending");
        assertTrue(residual.transpose().mmul(a).amaxNumber().doubleValue() < 1e-12, "the residual has no part along V_r");
        assertEquals(largestSingularValue(original), s * ata.getDouble(0, 0), 1e-9, "σ₁ = s·(AᵀA)₀₀");
    }

    private static double largestSingularValue(INDArray w) {
        INDArray gram = w.transpose().mmul(w);
        INDArray v = Nd4j.ones(DataType.DOUBLE, gram.rows(), 1);
        for (int i = 0; i < 500; i++) {
            v = gram.mmul(v);
            v.divi(v.norm2Number());
        }
        return Math.sqrt(v.transpose().mmul(gram).mmul(v).getDouble(0));
    }

    /** OLoRA: B = Q_rᵀ (orthonormal rows), A = R_rᵀ (R upper triangular), residual W − s·A·B. */
    @Test
    void oloraTakesTheFirstColumnsOfQAndRowsOfR() {
        TwoLayerModel model = new TwoLayerModel(DataType.DOUBLE, 7);
        INDArray original = model.blocks().get(1).weight().getArr().dup();
        PeftModel peft = PeftModel.builder(model).config(config(LoraInit.OLORA)).attach();
        LoraLayer layer = LoraAdapter.of(peft).layer("blocks.1");
        INDArray a = layer.weights().a();
        INDArray b = layer.weights().b();
        assertTrue(maxDifference(Nd4j.eye(2).castTo(DataType.DOUBLE), b.mmul(b.transpose())) < 1e-12, "B·Bᵀ = I");
        assertEquals(0.0, a.getDouble(0, 1), 0.0, "R is upper triangular, so A = R_rᵀ has a zero above its diagonal");
        INDArray residual = model.blocks().get(1).weight().getArr();
        assertTrue(maxDifference(original, residual.add(a.mmul(b).muli(layer.weights().scaling()))) < 1e-12);
    }

    /** The reference is numpy.linalg.qr (LAPACK dgeqrf/dorgqr) on the same matrix; signs included. */
    @Test
    void householderQrHasLapacksSigns() {
        double[][] m = {{1, 2, 3}, {4, 5, 6.5}, {7, 8.5, 9}, {1, 0, 2}};
        HouseholderQr qr = HouseholderQr.of(m);
        double[][] q = {{-0.12216944, 0.5391923, 0.66312393}, {-0.48867778, 0.09243297, 0.41466888},
            {-0.85518611, -0.01027033, -0.39995203}, {-0.12216944, -0.83703186, 0.47786477}};
        double[][] r = {{-8.18535277, -9.95680972, -11.48392777}, {0, 1.45325163, 0.4518945}, {0, 0, 2.04088078}};
        for (int i = 0; i < 4; i++) {
            assertArrayEquals(q[i], qr.q()[i], 1e-8, "Q row " + i);
        }
        for (int i = 0; i < 3; i++) {
            assertArrayEquals(r[i], qr.r()[i], 1e-8, "R row " + i);
        }
    }

    static final class EagerModel {
        final EagerLinear projection;

        EagerModel(long seed) {
            Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
            projection = new EagerLinear(Nd4j.rand(random, 7, 9).castTo(DataType.DOUBLE).subi(0.5)); // [out 7, in 9]
        }
    }

    /** PyTorch's [out, in] layout, computed eagerly: PiSSA with DoRA starts unchanged, merges and unmerges. */
    @Test
    void pissaWithDoraOnAnEagerOutInLayer() {
        EagerModel model = new EagerModel(11);
        INDArray original = model.projection.weight().dup();
        INDArray x = Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(12), 4, 9).castTo(DataType.DOUBLE);
        INDArray base = model.projection.forward(x).dup();
        PeftModel peft = PeftModel.builder(model).config(LoraConfig.targeting("projection").rank(3).alpha(6).init(LoraInit.PISSA).dora(true))
                .attach();
        assertTrue(maxDifference(base, model.projection.forward(x)) < 1e-12);
        LoraLayer layer = LoraAdapter.of(peft).layer("projection");
        assertTrue(original.norm2(1).equalsWithEps(layer.magnitude(), 1e-12), "magnitude = row norms of the [out, in] weight");

        layer.weights().b().addi(0.1);
        layer.magnitude().muli(1.5);
        INDArray adapted = model.projection.forward(x).dup();
        INDArray w = model.projection.weight().add(layer.weights().a().mmul(layer.weights().b()).muli(layer.weights().scaling()).transpose());
        INDArray expected = x.mmul(w.diviColumnVector(w.norm2(1).reshape(7, 1)).muliColumnVector(layer.magnitude().reshape(7, 1)).transpose());
        assertTrue(maxDifference(expected, adapted) < 1e-12, "DoRA in [out, in] layout: " + maxDifference(expected, adapted));
        INDArray residual = model.projection.weight().dup();
        peft.merge();
        assertTrue(maxDifference(adapted, model.projection.forward(x)) < 1e-12);
        peft.unmerge();
        assertTrue(maxDifference(residual, model.projection.weight()) < 1e-12);
    }

    /**
     * PEFT re-runs a PiSSA initialisation when it loads a PiSSA adapter (the base weight becomes its residual
     * before the saved A and B are written): the saved adapter applies to the original base.
     */
    @Test
    void aSavedPissaAdapterLoadsOntoTheOriginalBase() throws Exception {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 21);
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.builder(model).config(config(LoraInit.PISSA)).attach();
        LoraAdapter.of(peft).layerViews().forEach(layer -> layer.weights().b().muli(1.25));
        SDVariable output = model.forward(x);
        Map<String, INDArray> feed = Map.of("x", input(22, 5).castTo(DataType.FLOAT));
        INDArray expected = model.sd.output(feed, output.name()).get(output.name());
        peft.save(dir);
        assertEquals("pissa", new ObjectMapper().readTree(dir.resolve(AdapterCheckpoint.CONFIG_FILE).toFile()).get("init_lora_weights").asText());

        TwoLayerModel fresh = new TwoLayerModel(DataType.FLOAT, 21);
        SDVariable freshX = fresh.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        PeftModel.fromPretrained(fresh, dir);
        SDVariable freshOutput = fresh.forward(freshX);
        INDArray actual = fresh.sd.output(feed, freshOutput.name()).get(freshOutput.name());
        assertTrue(maxDifference(expected, actual) < 1e-5, "difference " + maxDifference(expected, actual));
    }

    /**
     * PEFT's conversion for the original base: [A; A₀] and [B, −B₀] at rank 2r, alpha doubled, init true. Loaded into an
     * untouched base as an ordinary LoRA, it reproduces the trained PiSSA model.
     */
    @Test
    void aPissaAdapterConvertedToPlainLoraAppliesToTheOriginalBase() throws Exception {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 23);
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        PeftModel peft = PeftModel.builder(model).config(config(LoraInit.PISSA)).attach();
        LoraAdapter.of(peft).layerViews().forEach(layer -> layer.weights().b().muli(1.25).addi(0.01));
        SDVariable output = model.forward(x);
        Map<String, INDArray> feed = Map.of("x", input(24, 5).castTo(DataType.FLOAT));
        INDArray expected = model.sd.output(feed, output.name()).get(output.name());
        peft.save(dir, io.peft4j.runtime.checkpoint.CheckpointOptions.defaults().withConversionToPlainLora(true));

        var config = new ObjectMapper().readTree(dir.resolve(AdapterCheckpoint.CONFIG_FILE).toFile());
        assertEquals(4, config.get("r").asInt(), "rank 2r");
        assertEquals(8.0, config.get("lora_alpha").asDouble(), "alpha doubled, so the scale stays alpha / r");
        assertTrue(config.get("init_lora_weights").asBoolean(), "an ordinary LoRA: nothing to re-run on load");
        Map<String, INDArray> tensors = io.peft4j.runtime.checkpoint.SafetensorsFile.read(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE));
        assertArrayEquals(new long[] {4, TwoLayerModel.IN}, tensors.get("base_model.model.blocks.0.lora_A.weight").shape());
        assertArrayEquals(new long[] {TwoLayerModel.HIDDEN, 4}, tensors.get("base_model.model.blocks.0.lora_B.weight").shape());

        TwoLayerModel original = new TwoLayerModel(DataType.FLOAT, 23);
        SDVariable freshX = original.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        PeftModel loaded = PeftModel.fromPretrained(original, dir);
        assertEquals(LoraInit.DEFAULT, LoraAdapter.of(loaded).layer("blocks.0").init());
        SDVariable freshOutput = original.forward(freshX);
        INDArray actual = original.sd.output(feed, freshOutput.name()).get(freshOutput.name());
        assertTrue(maxDifference(expected, actual) < 1e-5, "difference " + maxDifference(expected, actual));
    }

    @Test
    void onlyPissaAndOloraAdaptersConvertAndOneAdapterHasOneInitialisation() {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 25);
        PeftModel peft = PeftModel.builder(model).config(config(LoraInit.GAUSSIAN)).attach();
        io.peft4j.runtime.PeftException notPissa = assertThrows(io.peft4j.runtime.PeftException.class, () -> peft.save(dir,
                io.peft4j.runtime.checkpoint.CheckpointOptions.defaults().withConversionToPlainLora(true)));
        assertTrue(notPissa.getMessage().contains("did not start that way"), notPissa.getMessage());

        TwoLayerModel mixed = new TwoLayerModel(DataType.FLOAT, 26);
        INDArray before = mixed.blocks().get(0).weight().getArr().dup();
        io.peft4j.runtime.PeftException error = assertThrows(io.peft4j.runtime.PeftException.class,
                () -> PeftModel.builder(mixed).config(LoraConfig.targeting("blocks.0").rank(2).init(LoraInit.PISSA)).attach());
        assertTrue(error.getMessage().contains("cannot mix init PISSA and init DEFAULT layers"), error.getMessage());
        assertTrue(maxDifference(before, mixed.blocks().get(0).weight().getArr()) < 1e-6,
                "the refused attach gave back what PiSSA took out of blocks.0's weight");
    }

    @Test
    void anInitialisationPeft4jCannotReproduceIsRefusedByName() throws Exception {
        TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 31);
        PeftModel.builder(model).config(config(LoraInit.DEFAULT)).attach().save(dir);
        Path file = dir.resolve(AdapterCheckpoint.CONFIG_FILE);
        ObjectNode config = (ObjectNode) new ObjectMapper().readTree(file.toFile());
        config.put("init_lora_weights", "pissa_niter_4");
        Files.writeString(file, config.toString());
        CheckpointException error = assertThrows(CheckpointException.class, () -> PeftModel.fromPretrained(new TwoLayerModel(DataType.FLOAT, 31), dir));
        assertTrue(error.getMessage().contains("init_lora_weights = \"pissa_niter_4\""), error.getMessage());
        assertTrue(error.getMessage().contains("randomised SVD"), error.getMessage());
    }
}
