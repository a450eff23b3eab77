package io.peft4j.cli;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.ClassifierModel;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The packaged jar as a user runs it: {@code java -jar peft4j-cli.jar ...} from a folder outside the
 * checkout, with nothing else on the class path and no ND4J backend anywhere.
 */
class CliJarIT {

    @TempDir
    Path elsewhere;

    private record Run(int status, String out) {
    }

    private Run javaJar(String... args) throws IOException, InterruptedException {
        Path jar = Path.of(System.getProperty("peft4j.cli.jar"));
        assertTrue(Files.isRegularFile(jar), "the shaded jar is built at " + jar);
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(), "-jar", jar.toString()));
        command.addAll(List.of(args));
        Process process = new ProcessBuilder(command).directory(elsewhere.toFile()).redirectErrorStream(true).start();
        String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(2, TimeUnit.MINUTES), "the command finished");
        return new Run(process.exitValue(), out);
    }

    @Test
    void inspectsAndMergesWithNothingButTheJar() throws Exception {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        SafetensorsFile.write(elsewhere.resolve("base.safetensors"),
                Map.of("encoder.weight", model.encoder().weight().getArr(), "hidden.weight", model.hidden().weight().getArr(),
                        "classifier.weight", model.classifier().weight().getArr()),
                TensorDtype.F32, Map.of(MergeCommand.LAYOUT_METADATA, "in_out"));
        PeftModel.builder(model).only(LoRA.class).attach().save(elsewhere.resolve("adapter"));

        Run help = javaJar("--help");
        assertEquals(0, help.status(), help.out());
        assertTrue(help.out().contains("merge"), help.out());

        Run inspect = javaJar("inspect", "adapter");
        assertEquals(0, inspect.status(), inspect.out());
        assertTrue(inspect.out().contains("method    lora (peft_type LORA)"), inspect.out());

        Run merge = javaJar("merge", "base.safetensors", "adapter", "merged.safetensors");
        assertEquals(0, merge.status(), merge.out());
        assertTrue(merge.out().contains("2 layers merged (in_out layout)"), merge.out());
        assertEquals(3, SafetensorsFile.read(elsewhere.resolve("merged.safetensors")).size());
        assertFalse(merge.out().contains("org.nd4j"), "no ND4J log lines: " + merge.out());

        Run missing = javaJar("inspect", "nowhere");
        assertEquals(1, missing.status());
        assertTrue(missing.out().contains("nowhere"), missing.out());
    }
}
