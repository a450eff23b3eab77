package io.peft4j.runtime.checkpoint;

import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.stream.Stream;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/** Saving and loading LoRA adapters in Hugging Face PEFT's format, and refusing broken ones. */
class AdapterCheckpointTest {

    @TempDir
    Path dir;

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    /** A model with trained-looking adapters (A and B random), its graph and its output on fixed input. */
    private record Adapted(TwoLayerModel model, PeftModel peft, SDVariable output) {
        static Adapted create(long adapterSeed) {
            return create(adapterSeed, "default");
        }

        static Adapted create(long adapterSeed, String adapterName) {
            TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 1);
            PeftModel peft = PeftModel.builder(model).seed(adapterSeed).adapterName(adapterName).attach();
            SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
            return new Adapted(model, peft, model.forward(x));
        }

        Adapted randomize(long seed) {
            Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
            for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
                layer.weights().b().assign(Nd4j.rand(random, layer.weights().b().shape()).castTo(DataType.FLOAT).subi(0.5));
            }
            return this;
        }

        float[] outputs() {
            INDArray x = Nd4j.linspace(-1, 1, 4 * TwoLayerModel.IN, DataType.FLOAT).reshape(4, TwoLayerModel.IN);
            return model.sd.output(Map.of("x", x), output.name()).get(output.name()).data().asFloat();
        }

        List<float[]> adapterValues() {
            List<float[]> values = new ArrayList<>();
            LoraAdapter.of(peft).layerViews().forEach(layer -> {
                values.add(layer.weights().a().dup().data().asFloat());
                values.add(layer.weights().b().dup().data().asFloat());
            });
            return values;
        }
    }

    @Test
    void saveThenLoadIntoAFreshModelReproducesTheOutputsExactly() {
        Adapted saved = Adapted.create(1).randomize(2);
        saved.peft.save(dir);
        Adapted fresh = Adapted.create(99);
        fresh.peft.load(dir);
        assertArrayEquals(saved.outputs(), fresh.outputs(), 0f);
    }

    @Test
    void bf16RoundTripStaysWithinBf16Precision() {
        Adapted saved = Adapted.create(1).randomize(2);
        saved.peft.save(dir, CheckpointOptions.defaults().withStoreAs(TensorDtype.BF16));
        SafetensorsHeader header = SafetensorsFile.readHeader(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE));
        assertTrue(header.tensors().stream().allMatch(tensor -> tensor.dtype() == TensorDtype.BF16));
        Adapted fresh = Adapted.create(99);
        fresh.peft.load(dir);
        List<float[]> expected = saved.adapterValues();
        List<float[]> actual = fresh.adapterValues();
        for (int i = 0; i < expected.size(); i++) {
            for (int j = 0; j < expected.get(i).length; j++) {
                float want = expected.get(i)[j];
                assertEquals(want, actual.get(i)[j], Math.abs(want) / 128 + 1e-30f, "bf16 keeps 8 significant bits");
            }
        }
    }

    @Test
    void handBuiltFileIsReadByTheFormatNotByOurWriter() throws IOException {
        String header = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"m\":{\"dtype\":\"F32\",\"shape\":[2,2],\"data_offsets\":[0,16]},"
                + "\"b\":{\"dtype\":\"BF16\",\"shape\":[3],\"data_offsets\":[16,22]},"
                + "\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[22,26]}}";
        ByteBuffer data = ByteBuffer.allocate(26).order(ByteOrder.LITTLE_ENDIAN);
        data.putFloat(1f).putFloat(-2f).putFloat(0.5f).putFloat(4f);
        data.putShort((short) 0x3F80).putShort((short) 0x4020).putShort((short) 0xC040); // bf16 1, 2.5, -3
        data.putShort((short) 0x3C00).putShort((short) 0xC200);                          // f16 1, -3
        Path file = writeSafetensors(dir.resolve("hand.safetensors"), header, data.array());

        Map<String, INDArray> tensors = SafetensorsFile.read(file);
        assertArrayEquals(new float[] {1f, -2f, 0.5f, 4f}, tensors.get("m").data().asFloat());
        assertArrayEquals(new long[] {2, 2}, tensors.get("m").shape());
        assertEquals(-2f, tensors.get("m").getFloat(0, 1));
        assertArrayEquals(new float[] {1f, 2.5f, -3f}, tensors.get("b").castTo(DataType.FLOAT).data().asFloat());
        assertArrayEquals(new float[] {1f, -3f}, tensors.get("h").castTo(DataType.FLOAT).data().asFloat());
        assertEquals(Map.of("format", "pt"), SafetensorsFile.readHeader(file).metadata());
    }

    @Test
    void savedFilesHavePeftsKeyNamesShapesAndConfig() throws IOException {
        Adapted.create(1).peft.save(dir, CheckpointOptions.defaults().withBaseModel("two-layer-test"));
        byte[] file = Files.readAllBytes(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE));
        long headerLength = ByteBuffer.wrap(file, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        JsonNode header = new ObjectMapper().readTree(new String(file, 8, (int) headerLength, StandardCharsets.UTF_8));
        assertEquals("[2,6]", header.get("base_model.model.blocks.0.lora_A.weight").get("shape").toString());
        assertEquals("[5,2]", header.get("base_model.model.blocks.0.lora_B.weight").get("shape").toString());
        assertEquals("[1,5]", header.get("base_model.model.head.lora_A.weight").get("shape").toString());
        assertEquals("[3,1]", header.get("base_model.model.head.lora_B.weight").get("shape").toString());
        assertEquals("F32", header.get("base_model.model.blocks.1.lora_A.weight").get("dtype").asText());
        assertEquals(7, header.size(), "six tensors and __metadata__");

        JsonNode config = new ObjectMapper().readTree(dir.resolve(AdapterCheckpoint.CONFIG_FILE).toFile());
        assertEquals("LORA", config.get("peft_type").asText());
        assertEquals(2, config.get("r").asInt());
        assertEquals(4.0, config.get("lora_alpha").asDouble());
        assertEquals(0.0, config.get("lora_dropout").asDouble());
        assertEquals("[\"blocks.0\",\"blocks.1\",\"head\"]", config.get("target_modules").toString());
        assertEquals(1, config.get("rank_pattern").get("head").asInt());
        // head: rsLoRA, alpha 2, r 1: scale 2 / √1 = 2, which alpha 2 gives under r = 1 without rsLoRA too
        assertEquals(false, config.get("use_rslora").asBoolean());
        assertEquals(2.0, config.get("alpha_pattern").get("head").asDouble());
        assertEquals("none", config.get("bias").asText());
        assertFalse(config.get("fan_in_fan_out").asBoolean(), "a PEFT user loads into nn.Linear, whatever peft4j's layout");
        assertTrue(config.get("modules_to_save").isNull());
        assertEquals("two-layer-test", config.get("base_model_name_or_path").asText());
        for (String key : List.of("task_type", "use_rslora", "inference_mode")) {
            assertTrue(config.has(key), key);
        }
    }

    @Test
    void namedAdaptersLiveInTheirOwnSubdirectory() {
        Adapted saved = Adapted.create(1, "sotu").randomize(2);
        Path written = saved.peft.save(dir);
        assertEquals(dir.resolve("sotu"), written);
        assertTrue(Files.exists(dir.resolve("sotu").resolve(AdapterCheckpoint.WEIGHTS_FILE)));
        assertTrue(Files.notExists(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE)), "only the default adapter lives at the root");
        Adapted fresh = Adapted.create(3, "sotu");
        fresh.peft.load(dir, CheckpointOptions.defaults().withAdapterName("sotu"));
        assertArrayEquals(saved.outputs(), fresh.outputs(), 0f);
    }

    @Test
    void layerNameMappingAppliesOnSaveAndLoad() throws IOException {
        CheckpointOptions torchNames = CheckpointOptions.defaults().withLayerNames(path -> "encoder." + path);
        Adapted saved = Adapted.create(1).randomize(2);
        saved.peft.save(dir, torchNames);
        assertTrue(SafetensorsFile.readHeader(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE))
                .tensor("base_model.model.encoder.head.lora_B.weight") != null);
        Adapted fresh = Adapted.create(3);
        fresh.peft.load(dir, torchNames);
        assertArrayEquals(saved.outputs(), fresh.outputs(), 0f);
        CheckpointException unmapped = assertRejected(Adapted.create(4), dir, CheckpointOptions.defaults());
        assertTrue(unmapped.getMessage().contains("missing keys"), unmapped.getMessage());
    }

    @Test
    void anExceptionBetweenTheTwoWritesLeavesTheOldAdapter() throws IOException {
        Adapted model = Adapted.create(1).randomize(2);
        model.peft.save(dir);
        float[] oldOutputs = model.outputs();
        model.randomize(5);
        AdapterCheckpoint.Contents contents = new AdapterCheckpoint.Contents("default", "LORA",
                model.peft.adapter("default").parts().get(0).state(CheckpointOptions.defaults().keys()), List.of(), Map.of(), null, null);
        assertThrows(IllegalStateException.class, () -> AdapterCheckpoint.write(dir, contents, TensorDtype.F32, () -> {
            throw new IllegalStateException("killed between writes");
        }));
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(AdapterCheckpoint.CONFIG_FILE, AdapterCheckpoint.WEIGHTS_FILE),
                    files.map(file -> file.getFileName().toString()).sorted().toList(), "no temporary file left behind");
        }
        Adapted fresh = Adapted.create(3);
        fresh.peft.load(dir);
        assertArrayEquals(oldOutputs, fresh.outputs(), 0f);
    }

    @Test
    void weightsBesideAConfigFromAnotherSaveAreDetected() throws IOException {
        Path first = Files.createDirectory(dir.resolve("first"));
        Path second = Files.createDirectory(dir.resolve("second"));
        Adapted.create(1).randomize(2).peft.save(first);
        Adapted.create(1).randomize(3).peft.save(second, CheckpointOptions.defaults().withBaseModel("another"));
        // What a crash between the two renames of a save would leave: new weights, old config.
        Files.copy(second.resolve(AdapterCheckpoint.WEIGHTS_FILE), first.resolve(AdapterCheckpoint.WEIGHTS_FILE),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        CheckpointException error = assertRejected(Adapted.create(4), first, CheckpointOptions.defaults());
        assertTrue(error.getMessage().contains("different adapter_config.json"), error.getMessage());
    }

    // ---- rejections: each names the file and the problem, and leaves the model untouched ----

    private static Path writeSafetensors(Path file, String header, byte[] data) throws IOException {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer bytes = ByteBuffer.allocate(8 + json.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putLong(json.length).put(json).put(data);
        Files.write(file, bytes.array());
        return file;
    }

    /** A valid save whose weights file is then replaced by {@code header} + {@code data}. */
    private Path adapterWithWeights(String header, byte[] data) throws IOException {
        Adapted.create(1).peft.save(dir);
        Path weights = dir.resolve(AdapterCheckpoint.WEIGHTS_FILE);
        writeSafetensors(weights, header, data);
        return weights;
    }

    /** The header of a correct F32 file for TwoLayerModel, with {@code entry} replacing or adding one tensor. */
    private static String modelHeader(String extraOrReplacement) {
        StringBuilder header = new StringBuilder("{");
        long offset = 0;
        String[][] tensors = {
                {"blocks.0.lora_A", "2,6"}, {"blocks.0.lora_B", "5,2"}, {"blocks.1.lora_A", "2,5"},
                {"blocks.1.lora_B", "5,2"}, {"head.lora_A", "1,5"}, {"head.lora_B", "3,1"}};
        for (String[] tensor : tensors) {
            long elements = Stream.of(tensor[1].split(",")).mapToLong(Long::parseLong).reduce(1, (a, b) -> a * b);
            String key = "base_model.model." + tensor[0] + ".weight";
            if (extraOrReplacement.startsWith("\"" + key + "\"")) {
                continue;
            }
            header.append('"').append(key).append("\":{\"dtype\":\"F32\",\"shape\":[").append(tensor[1])
                    .append("],\"data_offsets\":[").append(offset).append(',').append(offset + 4 * elements).append("]},");
            offset += 4 * elements;
        }
        if (extraOrReplacement.isEmpty()) {
            header.setLength(header.length() - 1);
        }
        return header.append(extraOrReplacement).append('}').toString();
    }

    private static final int MODEL_DATA_BYTES = 4 * (12 + 10 + 10 + 10 + 5 + 3);

    private CheckpointException assertRejected(Adapted target, Path from, CheckpointOptions options) {
        List<float[]> before = target.adapterValues();
        CheckpointException error = assertThrows(CheckpointException.class, () -> target.peft.load(from, options));
        List<float[]> after = target.adapterValues();
        for (int i = 0; i < before.size(); i++) {
            assertArrayEquals(before.get(i), after.get(i), 0f, "a rejected load must not touch any weight");
        }
        return error;
    }

    private void assertRejectedNaming(String fileName, String problem) {
        CheckpointException error = assertRejected(Adapted.create(7), dir, CheckpointOptions.defaults());
        assertTrue(error.getMessage().contains(fileName) && error.getMessage().contains(problem), error.getMessage());
    }

    @Test
    void rejectsATruncatedFile() throws IOException {
        Adapted.create(1).peft.save(dir);
        Path weights = dir.resolve(AdapterCheckpoint.WEIGHTS_FILE);
        byte[] bytes = Files.readAllBytes(weights);
        Files.write(weights, java.util.Arrays.copyOf(bytes, bytes.length - 10));
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "out of range");
        Files.write(weights, java.util.Arrays.copyOf(bytes, 5));
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "truncated");
    }

    @Test
    void rejectsAHeaderLengthBeyondTheFile() throws IOException {
        Adapted.create(1).peft.save(dir);
        Path weights = dir.resolve(AdapterCheckpoint.WEIGHTS_FILE);
        byte[] bytes = Files.readAllBytes(weights);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, bytes.length);
        Files.write(weights, bytes);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "runs past the end of the file");
    }

    @Test
    void rejectsAHeaderAbove100MB() throws IOException {
        Adapted.create(1).peft.save(dir);
        Path weights = dir.resolve(AdapterCheckpoint.WEIGHTS_FILE);
        byte[] bytes = Files.readAllBytes(weights);
        ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN).putLong(0, 200L * 1024 * 1024);
        Files.write(weights, bytes);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "exceeds the 100000000-byte limit");
    }

    @Test
    void rejectsMalformedJson() throws IOException {
        adapterWithWeights("{\"base_model.model.head.lora_A.weight\": {\"dtype\": ", new byte[0]);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "malformed JSON header");
    }

    @Test
    void rejectsOverlappingOffsets() throws IOException {
        adapterWithWeights(modelHeader("\"base_model.model.head.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[3,1],\"data_offsets\":[0,12]}"),
                new byte[MODEL_DATA_BYTES]);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "overlap");
    }

    @Test
    void rejectsOutOfRangeOffsets() throws IOException {
        adapterWithWeights(modelHeader(""), new byte[MODEL_DATA_BYTES - 4]);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "out of range");
    }

    @Test
    void rejectsAnUnknownDtype() throws IOException {
        adapterWithWeights(modelHeader("\"base_model.model.head.lora_B.weight\":{\"dtype\":\"I8\",\"shape\":[3,1],\"data_offsets\":[188,191]}"),
                new byte[MODEL_DATA_BYTES]);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "dtype I8");
    }

    @Test
    void rejectsAShapeThatDoesNotFitTheLayer() throws IOException {
        adapterWithWeights(modelHeader("\"base_model.model.head.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[1,3],\"data_offsets\":[188,200]}"),
                new byte[MODEL_DATA_BYTES]);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "has shape [1, 3], but layer 'head'");
    }

    @Test
    void rejectsMissingKeys() throws IOException {
        adapterWithWeights(modelHeader("\"base_model.model.head.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[188,188]}")
                .replace(",\"base_model.model.head.lora_B.weight\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[188,188]}", ""),
                new byte[MODEL_DATA_BYTES - 12]);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "missing keys [base_model.model.head.lora_B.weight]");
    }

    @Test
    void rejectsAndListsUnexpectedKeys() throws IOException {
        adapterWithWeights(modelHeader("\"base_model.model.tail.lora_A.weight\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[200,204]}"),
                new byte[MODEL_DATA_BYTES + 4]);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "unexpected keys [base_model.model.tail.lora_A.weight]");
    }

    @Test
    void rejectsNonFiniteValuesUnlessAllowed() {
        Adapted saved = Adapted.create(1);
        LoraAdapter.of(saved.peft).layer("head").weights().b().putScalar(0, Float.NaN);
        saved.peft.save(dir);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "contains NaN or Inf");
        Adapted lenient = Adapted.create(2);
        lenient.peft.load(dir, CheckpointOptions.defaults().withAllowNonFinite(true));
        assertTrue(Float.isNaN(LoraAdapter.of(lenient.peft).layer("head").weights().b().getFloat(0)));
    }

    @Test
    void rejectsAConfigWhoseRankDiffersFromTheAnnotation() throws IOException {
        Adapted.create(1).peft.save(dir);
        // As Python PEFT writes it: no peft4j digest in the weights, so the edited config is read.
        Path weights = dir.resolve(AdapterCheckpoint.WEIGHTS_FILE);
        SafetensorsFile.write(weights, SafetensorsFile.read(weights), TensorDtype.F32, Map.of("format", "pt"));
        Path config = dir.resolve(AdapterCheckpoint.CONFIG_FILE);
        Files.writeString(config, Files.readString(config).replace("\"r\" : 2", "\"r\" : 4"));
        assertRejectedNaming(AdapterCheckpoint.CONFIG_FILE, "says r = 4 for 'blocks.0', but adapter 'default' has rank = 2 on 'blocks.0'");
    }

    @Test
    void rejectsMalformedConfigJsonAndIgnoresUnknownKeys() throws IOException {
        Adapted saved = Adapted.create(1).randomize(2);
        saved.peft.save(dir);
        Path config = dir.resolve(AdapterCheckpoint.CONFIG_FILE);
        String original = Files.readString(config);
        Files.writeString(config, original.substring(0, original.length() / 2));
        assertRejectedNaming(AdapterCheckpoint.CONFIG_FILE, "malformed JSON");

        Path weights = dir.resolve(AdapterCheckpoint.WEIGHTS_FILE); // as PEFT writes it: no peft4j digest of the config
        SafetensorsFile.write(weights, SafetensorsFile.read(weights), TensorDtype.F32, Map.of("format", "pt"));
        Files.writeString(config, original.replaceFirst("\\{", "{\"megatron_config\": null, \"layer_replication\": [1],"));
        Adapted newer = Adapted.create(3);
        newer.peft.load(dir, CheckpointOptions.defaults());
        assertArrayEquals(saved.outputs(), newer.outputs(), 0f, "a config with keys peft4j does not know loads");
    }

    // ---- configs are read strictly; honest edits load, torn pairs do not ----

    private void editConfig(java.util.function.UnaryOperator<String> edit) throws IOException {
        Path config = dir.resolve(AdapterCheckpoint.CONFIG_FILE);
        Files.writeString(config, edit.apply(Files.readString(config)));
    }

    @Test
    void rejectsNonIntegerRanksNonFiniteAlphasUnknownTargetsAndTrailingGarbage() throws IOException {
        Map<java.util.function.UnaryOperator<String>, String> edits = new java.util.LinkedHashMap<>();
        edits.put(config -> config.replace("\"r\" : 2", "\"r\" : 2.7"), "'r' must be a positive integer, got 2.7");
        edits.put(config -> config.replace("\"lora_alpha\" : 4.0", "\"lora_alpha\" : \"NaN\""), "'lora_alpha' must be a finite number");
        edits.put(config -> config.replace("\"head\" ]", "\"head\", \"tail\" ]"), "target_modules names [tail]");
        edits.put(config -> config.replace("\"blocks.1\", ", ""), "does not select [blocks.1]");
        edits.put(config -> config + "\n{}", "malformed JSON");
        for (Map.Entry<java.util.function.UnaryOperator<String>, String> edit : edits.entrySet()) {
            Adapted.create(1).randomize(2).peft.save(dir);
            editConfig(edit.getKey());
            assertRejectedNaming(AdapterCheckpoint.CONFIG_FILE, edit.getValue());
        }
    }

    @Test
    void refusesAConfigAbove16MbBeforeReadingIt() throws IOException {
        Adapted.create(1).peft.save(dir);
        Path config = dir.resolve(AdapterCheckpoint.CONFIG_FILE);
        try (java.io.RandomAccessFile file = new java.io.RandomAccessFile(config.toFile(), "rw")) {
            file.setLength(AdapterCheckpoint.MAX_CONFIG_BYTES + 1);
        }
        assertRejectedNaming(AdapterCheckpoint.CONFIG_FILE, "above the 16777216-byte limit");
    }

    @Test
    void honestEditsOfOurOwnConfigLoadAndTornPairsStillDoNot() throws IOException {
        Adapted saved = Adapted.create(1).randomize(2);
        saved.peft.save(dir);
        editConfig(config -> config.replaceFirst("\\{", "{\"notes\": \"tuned on the March data\",").replace("\n", "\n\n  "));
        Adapted loaded = Adapted.create(5);
        loaded.peft.load(dir);
        assertArrayEquals(saved.outputs(), loaded.outputs(), 0f, "an added key and reformatting load");

        Path other = dir.resolve("other");
        Adapted.create(1).randomize(3).peft.save(other);
        Files.copy(other.resolve(AdapterCheckpoint.WEIGHTS_FILE), dir.resolve(AdapterCheckpoint.WEIGHTS_FILE),
                java.nio.file.StandardCopyOption.REPLACE_EXISTING);
        assertRejectedNaming(AdapterCheckpoint.WEIGHTS_FILE, "different adapter_config.json");
    }

    @Test
    void aSaveRemovesTheTemporaryFilesOfKilledSaves() throws IOException {
        Adapted model = Adapted.create(1);
        model.peft.save(dir);
        Files.write(dir.resolve("." + AdapterCheckpoint.WEIGHTS_FILE + ".tmp-" + java.util.UUID.randomUUID()), new byte[1000]);
        Files.write(dir.resolve("." + AdapterCheckpoint.CONFIG_FILE + ".tmp-" + java.util.UUID.randomUUID()), new byte[10]);
        Files.write(dir.resolve("notes.txt"), new byte[3]);
        model.peft.save(dir);
        try (Stream<Path> files = Files.list(dir)) {
            assertEquals(List.of(AdapterCheckpoint.CONFIG_FILE, AdapterCheckpoint.WEIGHTS_FILE, "notes.txt"),
                    files.map(file -> file.getFileName().toString()).sorted().toList(), "leftovers gone, the user's file kept");
        }
    }
}
