package io.peft4j.samples.benchmark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Runs {@code benchmarks/pytorch_reference.py} (the same model in PyTorch, LoRA as PEFT applies it)
 * with the first Python that can import {@code torch}: {@code -Dpeft4j.python=...}, else
 * {@code /usr/bin/python3} (Debian's {@code python3-torch}), else {@code python3}.
 */
final class PyTorchReference {

    private static final ObjectMapper JSON = new ObjectMapper();

    private PyTorchReference() {
    }

    /** The script's JSON result for {@code model} (its {@code --model}), or empty when no Python with torch is found. */
    static Optional<JsonNode> run(String model, int threads) throws IOException, InterruptedException {
        Path script = locate();
        for (String python : candidates()) {
            if (!canImportTorch(python)) {
                continue;
            }
            Process process = new ProcessBuilder(python, script.toString(), "--model", model, "--threads", String.valueOf(threads))
                    .redirectError(ProcessBuilder.Redirect.INHERIT).start();
            String output = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
            if (!process.waitFor(20, TimeUnit.MINUTES) || process.exitValue() != 0) {
                throw new IOException(python + " " + script + " failed: " + output);
            }
            JsonNode result = JSON.readTree(output.lines().reduce((first, second) -> second).orElse("{}"));
            ((com.fasterxml.jackson.databind.node.ObjectNode) result).put("python", python);
            return Optional.of(result);
        }
        return Optional.empty();
    }

    private static List<String> candidates() {
        String configured = System.getProperty("peft4j.python");
        return configured != null ? List.of(configured) : List.of("/usr/bin/python3", "python3");
    }

    private static boolean canImportTorch(String python) {
        try {
            Process probe = new ProcessBuilder(python, "-c", "import torch").redirectErrorStream(true).start();
            probe.getInputStream().readAllBytes();
            return probe.waitFor(60, TimeUnit.SECONDS) && probe.exitValue() == 0;
        } catch (IOException | InterruptedException notThere) {
            return false;
        }
    }

    private static Path locate() {
        for (Path candidate : List.of(Path.of("benchmarks/pytorch_reference.py"), Path.of("../benchmarks/pytorch_reference.py"))) {
            if (Files.isRegularFile(candidate)) {
                return candidate;
            }
        }
        throw new IllegalStateException("benchmarks/pytorch_reference.py not found from " + Path.of("").toAbsolutePath());
    }
}
