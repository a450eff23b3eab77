package io.peft4j.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.cli.Peft4jCli;
import io.peft4j.runtime.internal.AgentStatus;
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
        peft.layers().forEach(layer -> layer.weights().b().assign(0.25));
        return peft;
    }

    @Test
    void inspectPrintsLayersShapesRanksParametersSizeAndConfig() throws Exception {
        adapted(1).save(dir);
        Run run = cli("inspect", dir.toString());
        assertEquals(0, run.status(), run.err());
        assertTrue(run.out().contains("peft_type=LORA  r=2  lora_alpha=4.0"), run.out());
        assertTrue(run.out().matches("(?s).*blocks\\.0\\s+2\\s+6\\s+5\\s+F32\\s+\\[2, 6\\]\\s+\\[5, 2\\]\\s+22\\n.*"), run.out());
        assertTrue(run.out().matches("(?s).*head\\s+1\\s+5\\s+3\\s+F32.*"), run.out());
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
        assertTrue(same.out().matches("(?s).*blocks\\.0\\s+0\\.0000e\\+00\\s+0\\.0000e\\+00\\s+0\\.0000e\\+00.*"), same.out());
        Run different = cli("diff", first.toString(), second.toString());
        assertEquals(0, different.status(), different.err());
        assertTrue(different.out().matches("(?s).*blocks\\.0\\s+[1-9]\\.\\d{4}e-0\\d\\s+0\\.0000e\\+00\\s+[1-9].*"), different.out());
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
