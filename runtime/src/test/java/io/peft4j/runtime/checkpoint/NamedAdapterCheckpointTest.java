package io.peft4j.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.AdapterOptions;
import io.peft4j.runtime.AdapterScope;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.testmodel.ClassifierModel;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
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
import org.nd4j.linalg.ops.transforms.Transforms;

/** Several named adapters and their trained heads in Hugging Face PEFT's layout, both ways. */
class NamedAdapterCheckpointTest {

    private static final ObjectMapper JSON = new ObjectMapper();

    @TempDir
    Path dir;

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static INDArray input() {
        return Nd4j.rand(Nd4j.getRandomFactory().getNewRandomInstance(9), 5, ClassifierModel.IN).castTo(DataType.FLOAT).subi(0.5);
    }

    private static void randomize(INDArray array, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        array.assign(Nd4j.rand(random, array.shape()).castTo(array.dataType()).subi(0.5));
    }

    /** "default": LoRA with a trained head; "sotu": LoRA; "bn": a bottleneck adapter; all with trained-looking values. */
    private record Three(ClassifierModel model, PeftModel peft, SDVariable output) {
        static Three create() {
            ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
            PeftModel peft = PeftModel.builder(model).only(LoRA.class).alsoTrain("classifier").taskType("SEQ_CLS")
                    .baseModel("peft4j/classifier-test").attach();
            peft.addAdapter("sotu", AdapterOptions.defaults().withMethods(LoRA.class).withSeed(2));
            peft.addAdapter("bn", AdapterOptions.defaults().withMethods(Adapter.class).withSeed(3));
            SDVariable output = model.forward(model.sd.placeHolder("x", DataType.FLOAT, -1, ClassifierModel.IN));
            long seed = 10;
            for (String name : List.of("default", "sotu")) {
                for (LoraLayer layer : LoraAdapter.of(peft, name).layerViews()) {
                    randomize(layer.weights().b(), seed++);
                }
            }
            for (SDVariable variable : model.sd.variables()) {
                if (variable.name().contains(".adapters.bn.")) {
                    randomize(variable.getArr(), seed++);
                }
            }
            randomize(model.classifier().weight().getArr(), seed); // "default" is active: its head copy is live
            return new Three(model, peft, output);
        }

        float[] outputs(String adapter) {
            peft.setAdapter(adapter);
            return model.sd.output(Map.of("x", input()), output.name()).get(output.name()).data().asFloat();
        }

        float[] baseOutputs() {
            try (AdapterScope base = peft.disableAdapters()) {
                return model.sd.output(Map.of("x", input()), output.name()).get(output.name()).data().asFloat();
            }
        }
    }

    @Test
    void threeNamedAdaptersOfTwoMethodsAndAHeadRoundTrip() {
        Three saved = Three.create();
        Map<String, float[]> expected = new LinkedHashMap<>();
        for (String name : List.of("default", "sotu", "bn")) {
            expected.put(name, saved.outputs(name));
        }
        assertEquals(dir, saved.peft.save(dir));
        assertTrue(Files.exists(dir.resolve(AdapterCheckpoint.CONFIG_FILE)), "default at the root");
        assertTrue(Files.exists(dir.resolve("sotu").resolve(AdapterCheckpoint.WEIGHTS_FILE)));
        assertTrue(Files.exists(dir.resolve("bn").resolve(AdapterCheckpoint.WEIGHTS_FILE)));

        ClassifierModel fresh = new ClassifierModel(DataType.FLOAT, 1);
        PeftModel loaded = PeftModel.fromPretrained(fresh, dir);
        loaded.addAdapter("sotu", dir.resolve("sotu"));
        loaded.addAdapter("bn", dir.resolve("bn"));
        Three reloaded = new Three(fresh, loaded, fresh.forward(fresh.sd.placeHolder("x", DataType.FLOAT, -1, ClassifierModel.IN)));
        for (String name : expected.keySet()) {
            assertArrayEquals(expected.get(name), reloaded.outputs(name), 0f, name + " reproduces its outputs");
        }
        assertArrayEquals(saved.baseOutputs(), reloaded.baseOutputs(), 0f, "and the base is the base");
        assertEquals(List.of("classifier"), loaded.adapter("default").alsoTrain(), "the head came back as a trained module");
        assertEquals("SEQ_CLS", loaded.adapter("default").taskType());
    }

    @Test
    void writtenConfigAndHeaderFollowPeft() throws IOException {
        Three.create().peft.save(dir);
        JsonNode config = JSON.readTree(dir.resolve(AdapterCheckpoint.CONFIG_FILE).toFile());
        assertEquals("LORA", config.get("peft_type").asText());
        assertEquals("SEQ_CLS", config.get("task_type").asText());
        assertEquals("peft4j/classifier-test", config.get("base_model_name_or_path").asText());
        assertEquals("[\"encoder\",\"hidden\"]", config.get("target_modules").toString(), "PEFT's short form");
        assertFalse(config.get("fan_in_fan_out").asBoolean(), "nn.Linear, whatever peft4j's [in, out] layout");
        assertEquals("[\"classifier\"]", config.get("modules_to_save").toString());
        assertEquals(2, config.get("r").asInt());
        assertEquals(3, config.get("rank_pattern").get("hidden").asInt());

        SafetensorsHeader header = SafetensorsFile.readHeader(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE));
        assertArrayEquals(new long[] {2, 6}, header.tensor("base_model.model.encoder.lora_A.weight").shape());
        assertArrayEquals(new long[] {8, 3}, header.tensor("base_model.model.hidden.lora_B.weight").shape());
        assertArrayEquals(new long[] {3, 8}, header.tensor("base_model.model.classifier.weight").shape(),
                "the head as nn.Linear stores it, [out, in]");
        assertArrayEquals(new long[] {3}, header.tensor("base_model.model.classifier.bias").shape());
        assertEquals(6, header.tensors().size(), "four LoRA factors, the head's weight and bias, and nothing else: " + header.tensors());

        JsonNode sotu = JSON.readTree(dir.resolve("sotu").resolve(AdapterCheckpoint.CONFIG_FILE).toFile());
        assertTrue(sotu.get("modules_to_save").isNull(), "sotu trains no head");
        Three.create().peft.save(dir.resolve("conv1d"), CheckpointOptions.defaults().withAdapterName("default").withFanInFanOut(true));
        assertTrue(JSON.readTree(dir.resolve("conv1d").resolve(AdapterCheckpoint.CONFIG_FILE).toFile()).get("fan_in_fan_out").asBoolean(),
                "settable for models that use GPT-2's Conv1D layout");
    }

    @Test
    void aFileWrittenAsPeftWritesItLoads() throws IOException {
        // As PEFT's save_pretrained writes a LoRA for SEQ_CLS: sorted keys, keys peft4j does not know,
        // F16 factors, a head under modules_to_save, r = 4 where the annotation says 3.
        Files.writeString(dir.resolve(AdapterCheckpoint.CONFIG_FILE), """
                {
                  "alpha_pattern": {},
                  "auto_mapping": null,
                  "base_model_name_or_path": "peft4j/classifier-test",
                  "bias": "none",
                  "corda_config": null,
                  "eva_config": null,
                  "exclude_modules": null,
                  "fan_in_fan_out": false,
                  "inference_mode": true,
                  "init_lora_weights": true,
                  "layer_replication": null,
                  "layers_pattern": null,
                  "layers_to_transform": null,
                  "loftq_config": {},
                  "lora_alpha": 8,
                  "lora_bias": false,
                  "lora_dropout": 0.1,
                  "megatron_config": null,
                  "megatron_core": "megatron.core",
                  "modules_to_save": ["classifier"],
                  "peft_type": "LORA",
                  "peft_version": "0.17.1",
                  "r": 4,
                  "rank_pattern": {},
                  "revision": null,
                  "target_modules": ["hidden"],
                  "task_type": "SEQ_CLS",
                  "trainable_token_indices": null,
                  "use_dora": false,
                  "use_qalora": false,
                  "use_rslora": false
                }""");
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(21);
        INDArray loraA = Nd4j.rand(random, 4, ClassifierModel.WIDTH).subi(0.5).castTo(DataType.HALF);   // [r, in]
        INDArray loraB = Nd4j.rand(random, ClassifierModel.WIDTH, 4).subi(0.5).castTo(DataType.HALF);   // [out, r]
        INDArray head = Nd4j.rand(random, ClassifierModel.CLASSES, ClassifierModel.WIDTH).subi(0.5);     // nn.Linear [out, in]
        INDArray headBias = Nd4j.rand(random, ClassifierModel.CLASSES).subi(0.5);
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        tensors.put("base_model.model.hidden.lora_A.default.weight", loraA); // the adapter-name segment some tools keep
        tensors.put("base_model.model.hidden.lora_B.weight", loraB);
        tensors.put("base_model.model.classifier.weight", head);
        tensors.put("base_model.model.classifier.bias", headBias);
        writeAsIs(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE), tensors);

        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        INDArray x = input();
        INDArray expected = referenceForward(model, x, loraA.castTo(DataType.FLOAT), loraB.castTo(DataType.FLOAT), 8.0 / 4, head, headBias);
        PeftModel peft = PeftModel.fromPretrained(model, dir);
        assertEquals(List.of("hidden"), LoraAdapter.of(peft).layers(), "target_modules, not the annotations, decide the layers");
        assertEquals(4, LoraAdapter.of(peft).layer("hidden").rank(), "and the rank");
        assertEquals(0.1, LoraAdapter.of(peft).layer("hidden").dropout(), 0.0);
        SDVariable output = model.forward(model.sd.placeHolder("x", DataType.FLOAT, -1, ClassifierModel.IN));
        INDArray actual = model.sd.output(Map.of("x", x), output.name()).get(output.name());
        assertTrue(actual.equalsWithEps(expected, 1e-5), "PEFT's formula by hand: " + expected + " vs " + actual);
    }

    /** Writes {@code tensors} in their own dtypes, with no peft4j metadata, as another writer would. */
    private static void writeAsIs(Path file, Map<String, INDArray> tensors) throws IOException {
        Map<String, Map<String, INDArray>> byDtype = new LinkedHashMap<>();
        tensors.forEach((key, value) -> byDtype.computeIfAbsent(value.dataType().name(), unused -> new LinkedHashMap<>()).put(key, value));
        StringBuilder header = new StringBuilder("{\"__metadata__\":{\"format\":\"pt\"}");
        java.io.ByteArrayOutputStream data = new java.io.ByteArrayOutputStream();
        for (Map.Entry<String, INDArray> tensor : tensors.entrySet()) {
            INDArray value = tensor.getValue().dup('c');
            String dtype = value.dataType() == DataType.HALF ? "F16" : "F32";
            java.nio.ByteBuffer bytes = value.data().asNio();
            byte[] raw = new byte[(int) (value.length() * value.dataType().width())];
            bytes.get(raw);
            header.append(",\"").append(tensor.getKey()).append("\":{\"dtype\":\"").append(dtype).append("\",\"shape\":")
                    .append(java.util.Arrays.toString(value.shape()).replace(" ", "")).append(",\"data_offsets\":[")
                    .append(data.size()).append(',').append(data.size() + raw.length).append("]}");
            data.write(raw);
        }
        byte[] json = header.append('}').toString().getBytes(java.nio.charset.StandardCharsets.UTF_8);
        java.nio.ByteBuffer out = java.nio.ByteBuffer.allocate(8 + json.length + data.size()).order(java.nio.ByteOrder.LITTLE_ENDIAN);
        out.putLong(json.length).put(json).put(data.toByteArray());
        Files.write(file, out.array());
    }

    /** The model's forward written out with PEFT's formula on the hidden layer and the loaded head. */
    private static INDArray referenceForward(ClassifierModel model, INDArray x, INDArray loraA, INDArray loraB, double scale,
                                             INDArray head, INDArray headBias) {
        INDArray encoded = Transforms.tanh(x.mmul(model.encoder().weight().getArr()).addiRowVector(model.encoder().bias().getArr()));
        INDArray hidden = encoded.mmul(model.hidden().weight().getArr()).addiRowVector(model.hidden().bias().getArr())
                .addi(encoded.mmul(loraA.transpose()).mmul(loraB.transpose()).muli(scale));
        return Transforms.tanh(hidden).mmul(head.transpose()).addiRowVector(headBias);
    }

    @Test
    void perMethodRejectionsNameTheFileAndTouchNothing() throws IOException {
        Three saved = Three.create();
        saved.peft.save(dir);
        Three target = Three.create();
        float[] before = target.outputs("bn");

        Path bnWeights = dir.resolve("bn").resolve(AdapterCheckpoint.WEIGHTS_FILE);
        Map<String, INDArray> bn = SafetensorsFile.read(bnWeights);
        String up = bn.keySet().stream().filter(key -> key.endsWith("adapter_up.weight")).findFirst().orElseThrow();
        Map<String, INDArray> wrongShape = new LinkedHashMap<>(bn);
        wrongShape.put(up, Nd4j.zeros(DataType.FLOAT, 3, 3));
        SafetensorsFile.write(bnWeights, wrongShape, TensorDtype.F32, Map.of("format", "pt"));
        CheckpointException shape = assertThrows(CheckpointException.class,
                () -> target.peft.load(dir, CheckpointOptions.defaults().withAdapterName("bn")));
        assertTrue(shape.getMessage().contains(up) && shape.getMessage().contains("[3, 3]"), shape.getMessage());

        Map<String, INDArray> missing = new LinkedHashMap<>(bn);
        missing.remove(up);
        SafetensorsFile.write(bnWeights, missing, TensorDtype.F32, Map.of("format", "pt"));
        CheckpointException keys = assertThrows(CheckpointException.class,
                () -> target.peft.load(dir, CheckpointOptions.defaults().withAdapterName("bn")));
        assertTrue(keys.getMessage().contains("missing keys [" + up + "]"), keys.getMessage());
        assertArrayEquals(before, target.outputs("bn"), 0f, "a rejected load leaves the adapter as it was");

        Path headWeights = dir.resolve(AdapterCheckpoint.WEIGHTS_FILE);
        Map<String, INDArray> withoutHead = new LinkedHashMap<>(SafetensorsFile.read(headWeights));
        withoutHead.remove("base_model.model.classifier.bias");
        SafetensorsFile.write(headWeights, withoutHead, TensorDtype.F32, Map.of("format", "pt"));
        CheckpointException head = assertThrows(CheckpointException.class, () -> target.peft.load(dir));
        assertTrue(head.getMessage().contains("missing trained-module keys [base_model.model.classifier.bias]"), head.getMessage());
    }
}
