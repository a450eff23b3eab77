package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.testmodel.ClassifierModel;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * {@code peft4j merge} against the runtime's own merge: the same model, adapter and trained head, merged
 * once in the graph and once from files by the command line.
 */
class MergeCommandTest {

    @TempDir
    Path dir;

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private record Run(int status, String out, String err) {
    }

    private static Run cli(String... args) {
        StringWriter out = new StringWriter();
        StringWriter err = new StringWriter();
        int status = Peft4jCli.run(new PrintWriter(out, true), new PrintWriter(err, true), args);
        return new Run(status, out.toString(), err.toString());
    }

    /** A LoRA adapter on encoder and hidden with trained-looking B, and a changed classifier head saved with it. */
    private static PeftModel adapted(ClassifierModel model) {
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).alsoTrain("classifier").seed(3).attach();
        long seed = 20;
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            INDArray b = layer.weights().b();
            b.assign(Nd4j.getRandomFactory().getNewRandomInstance(seed++).nextDouble() + 0.5);
            b.muli(Nd4j.linspace(1, b.length(), b.length(), b.dataType()).reshape(b.shape()).divi(b.length()));
        }
        model.classifier().weight().getArr().addi(0.125);
        return peft;
    }

    /** The model's weights as its own (ND4J, {@code [in, out]}) checkpoint would hold them. */
    private static Map<String, INDArray> baseWeights(ClassifierModel model) {
        Map<String, INDArray> weights = new LinkedHashMap<>();
        for (String name : new String[] {"encoder.weight", "encoder.bias", "hidden.weight", "hidden.bias", "classifier.weight", "classifier.bias"}) {
            weights.put("model." + name, model.sd.getVariable(name).getArr().dup());
        }
        return weights;
    }

    private Path writeBase(ClassifierModel model, Map<String, String> metadata) {
        Path base = dir.resolve("base.safetensors");
        SafetensorsFile.write(base, baseWeights(model), TensorDtype.F32, metadata);
        return base;
    }

    @Test
    void mergedFileEqualsTheRuntimesMergeAndCarriesTheTrainedHead() {
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        Path base = writeBase(model, Map.of());
        PeftModel peft = adapted(model);
        Path adapter = peft.save(dir.resolve("adapter"));
        peft.merge();
        Map<String, INDArray> runtimeMerged = baseWeights(model);

        Path out = dir.resolve("merged.safetensors");
        Run run = cli("merge", base.toString(), adapter.toString(), out.toString(), "--layout", "in_out");
        assertEquals(0, run.status(), run.err());
        assertTrue(run.out().contains("merged encoder"), run.out());
        assertTrue(run.out().contains("replaced model.classifier.weight"), run.out());

        Map<String, INDArray> cliMerged = SafetensorsFile.read(out);
        Map<String, INDArray> original = SafetensorsFile.read(base);
        assertEquals(runtimeMerged.keySet(), cliMerged.keySet());
        for (String name : runtimeMerged.keySet()) {
            INDArray expected = runtimeMerged.get(name);
            INDArray actual = cliMerged.get(name);
            assertArrayEquals(expected.shape(), actual.shape(), name);
            // The runtime adds s·B·A in fp32; the command line in fp64, rounded once: at most a few fp32 ulps apart.
            double tolerance = 4 * Math.ulp((float) expected.amaxNumber().doubleValue());
            assertTrue(expected.sub(actual).amaxNumber().doubleValue() <= tolerance,
                    name + ": runtime and command line differ by " + expected.sub(actual).amaxNumber());
        }
        for (String changed : new String[] {"model.encoder.weight", "model.hidden.weight", "model.classifier.weight"}) {
            assertTrue(original.get(changed).sub(cliMerged.get(changed)).amaxNumber().doubleValue() > 1e-3, changed + " changed");
        }
        assertEquals(original.get("model.encoder.bias"), cliMerged.get("model.encoder.bias"), "biases are the base's");
        assertEquals("in_out", SafetensorsFile.readHeader(out).metadata().get(MergeCommand.LAYOUT_METADATA));
    }

    @Test
    void theLayoutComesFromTheBaseFilesMetadataAndAWrongOneIsNamed() {
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        Path plain = writeBase(model, Map.of());
        Path adapter = adapted(model).save(dir.resolve("adapter"));

        Path out = dir.resolve("merged.safetensors");
        Run wrong = cli("merge", plain.toString(), adapter.toString(), out.toString());
        assertEquals(1, wrong.status());
        assertTrue(wrong.err().contains("'model.encoder.weight' is [6, 8], but the adapter's delta needs [8, 6] in out_in layout; pass --layout in_out"),
                wrong.err());
        assertFalse(Files.exists(out), "nothing written");

        Path described = dir.resolve("described.safetensors");
        SafetensorsFile.write(described, SafetensorsFile.read(plain), TensorDtype.F32, Map.of(MergeCommand.LAYOUT_METADATA, "in_out"));
        Run run = cli("merge", described.toString(), adapter.toString(), out.toString());
        assertEquals(0, run.status(), run.err());
        assertTrue(run.out().contains("(in_out layout)"), run.out());
    }

    @Test
    void refusesToOverwriteAnInputOrAnExistingFile() throws Exception {
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        Path base = writeBase(model, Map.of());
        Path adapter = adapted(model).save(dir.resolve("adapter"));
        byte[] before = Files.readAllBytes(base);

        Run onBase = cli("merge", base.toString(), adapter.toString(), base.toString(), "--layout", "in_out", "--force");
        assertEquals(1, onBase.status());
        assertTrue(onBase.err().contains("is one of the inputs"), onBase.err());
        assertArrayEquals(before, Files.readAllBytes(base), "the base is untouched");

        Path out = dir.resolve("merged.safetensors");
        Files.writeString(out, "keep me");
        Run existing = cli("merge", base.toString(), adapter.toString(), out.toString(), "--layout", "in_out");
        assertEquals(1, existing.status());
        assertTrue(existing.err().contains("exists; pass --force to replace it"), existing.err());
        assertEquals("keep me", Files.readString(out));

        Run forced = cli("merge", base.toString(), adapter.toString(), out.toString(), "--layout", "in_out", "--force");
        assertEquals(0, forced.status(), forced.err());
        assertEquals(6, SafetensorsFile.read(out).size());
    }

    @Test
    void onlyLoraMerges() {
        io.peft4j.runtime.testmodel.SequenceModel prompted = new io.peft4j.runtime.testmodel.SequenceModel(DataType.FLOAT, 1);
        Path adapter = PeftModel.builder(prompted).only(io.peft4j.annotations.PromptTuning.class).attach().save(dir.resolve("prompt"));
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        Path base = writeBase(model, Map.of());
        Run run = cli("merge", base.toString(), adapter.toString(), dir.resolve("out.safetensors").toString());
        assertEquals(1, run.status());
        assertTrue(run.err().contains("is a PROMPT_TUNING adapter; only LoRA merges into weights"), run.err());
    }
}
