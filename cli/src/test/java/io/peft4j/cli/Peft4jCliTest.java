package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.io.PrintWriter;
import java.io.StringWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

/** {@code peft4j inspect} and {@code peft4j diff} on adapters saved by the runtime. */
class Peft4jCliTest {

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

    private static PeftModel adapted(long seed) {
        PeftModel peft = PeftModel.builder(new TwoLayerModel(DataType.FLOAT, 1)).seed(seed).attach();
        LoraAdapter.of(peft).layerViews().forEach(layer -> layer.weights().b().assign(0.25));
        return peft;
    }

    @Test
    void inspectPrintsLayersShapesRanksParametersSizeAndConfig() throws Exception {
        adapted(1).save(dir);
        Run run = cli("inspect", dir.toString());
        assertEquals(0, run.status(), run.err());
        assertTrue(run.out().contains("method    lora (peft_type LORA)"), run.out());
        assertTrue(run.out().contains("r=2  lora_alpha=4.0"), run.out());
        assertTrue(run.out().contains("blocks.0  rank 2  in 6  out 5  F32  lora_A [2, 6]  lora_B [5, 2]  (22 parameters)"), run.out());
        assertTrue(run.out().contains("head      rank 1  in 5  out 3  F32"), run.out());
        assertTrue(run.out().contains("3 layers, 50 parameters"), run.out());
        long size = Files.size(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE)) + Files.size(dir.resolve(AdapterCheckpoint.CONFIG_FILE));
        assertTrue(run.out().contains(String.format("size on disk: %,d bytes", size)), run.out());
    }

    @Test
    void diffReportsPerLayerDifferences() {
        Path first = dir.resolve("a");
        Path second = dir.resolve("b");
        adapted(1).save(first);
        adapted(2).save(second);
        Run same = cli("diff", first.toString(), first.toString());
        assertEquals(0, same.status(), same.err());
        assertTrue(same.out().matches("(?s).*blocks\\.0 \\(s·B·A\\)\\s+0\\.0000e\\+00\\n.*"), same.out());
        Run different = cli("diff", first.toString(), second.toString());
        assertEquals(0, different.status(), different.err());
        // Seeds 1 and 2 give different A, one B: every tensor but lora_B differs, and so does each layer's delta.
        assertTrue(different.out().matches("(?s).*base_model\\.model\\.blocks\\.0\\.lora_A\\.weight\\s+[1-9]\\.\\d{4}e-0\\d\\n.*"),
                different.out());
        assertTrue(different.out().matches("(?s).*base_model\\.model\\.blocks\\.0\\.lora_B\\.weight\\s+0\\.0000e\\+00\\n.*"),
                different.out());
        assertTrue(different.out().matches("(?s).*blocks\\.0 \\(s·B·A\\)\\s+[1-9]\\.\\d{4}e-0\\d\\n.*"), different.out());
    }

    @Test
    void inspectAndDiffReadEveryMethod() {
        io.peft4j.runtime.testmodel.SequenceModel prompted = new io.peft4j.runtime.testmodel.SequenceModel(DataType.DOUBLE, 1);
        PeftModel.builder(prompted).only(io.peft4j.annotations.PromptTuning.class).attach().save(dir.resolve("prompt"));
        Run prompt = cli("inspect", dir.resolve("prompt").toString());
        assertEquals(0, prompt.status(), prompt.err());
        assertTrue(prompt.out().contains("method    prompt_tuning (peft_type PROMPT_TUNING)"), prompt.out());
        assertTrue(prompt.out().contains("num_virtual_tokens=3"), prompt.out());
        assertTrue(prompt.out().contains("prompt_embeddings  F32 [3, 4]  (12 parameters)"), prompt.out());

        io.peft4j.runtime.testmodel.AdapterTestModel bottleneck = new io.peft4j.runtime.testmodel.AdapterTestModel(DataType.FLOAT, 1);
        PeftModel peft = PeftModel.builder(bottleneck).only(io.peft4j.annotations.Adapter.class).attach();
        bottleneck.forward(bottleneck.sd.placeHolder("x", DataType.FLOAT, -1, io.peft4j.runtime.testmodel.AdapterTestModel.IN));
        peft.save(dir.resolve("bottleneck"));
        Run inspected = cli("inspect", dir.resolve("bottleneck").toString());
        assertTrue(inspected.out().contains("method    bottleneck (peft_type BOTTLENECK)"), inspected.out());
        assertTrue(inspected.out().contains("base_model.model.hidden.adapters.default.adapter_down.0.weight  F32 [3, 8]"), inspected.out());
        Run same = cli("diff", dir.resolve("bottleneck").toString(), dir.resolve("bottleneck").toString());
        assertEquals(0, same.status(), same.err());
        assertTrue(same.out().contains("base_model.model.output.adapters.default.adapter_up.weight"), same.out());
        Run different = cli("diff", dir.resolve("prompt").toString(), dir.resolve("bottleneck").toString());
        assertEquals(1, different.status());
        assertTrue(different.out().contains("different methods"), different.out());
    }

    @Test
    void aBrokenAdapterExitsWithOneAndNamesTheFile() throws Exception {
        adapted(1).save(dir);
        Files.write(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE), new byte[] {1, 2, 3});
        Run run = cli("inspect", dir.toString());
        assertEquals(1, run.status());
        assertTrue(run.err().contains("adapter_model.safetensors: truncated"), run.err());
    }
}
