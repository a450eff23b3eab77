package io.peft4j.samples.spam;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The samples print peft4j's lines only: {@link QuietOutputProbe} runs the main job's noisy path
 * (ONNX weights, DJL's tokenizer, SameDiff graph building, training) in a fresh JVM with the agent, and
 * every line of its output is attributed to its source. With {@code -Dpeft4j.verbose=true} and ND4J's
 * logging at INFO the same run shows ND4J's lines, so the count can fail.
 */
class QuietOutputTest {

    private static final Pattern LOGGED = Pattern.compile("^\\[[^\\]]+\\] (TRACE|DEBUG|INFO|WARN|ERROR) ([\\w.$]+) - .*");

    /** Lines by source: the logger's package for slf4j lines, "jdk" for the JVM's incubator warning, "peft4j" for ours. */
    private static Map<String, Integer> linesBySource(List<String> lines) {
        Map<String, Integer> counts = new LinkedHashMap<>();
        for (String line : lines) {
            String source;
            Matcher logged = LOGGED.matcher(line);
            if (logged.matches()) {
                String logger = logged.group(2);
                source = logger.startsWith("io.peft4j") ? "peft4j" : logger.startsWith("org.nd4j") ? "nd4j"
                        : logger.startsWith("ai.djl") ? "djl" : "other: " + logger;
            } else if (line.equals("WARNING: Using incubator modules: jdk.incubator.vector")) {
                source = "jdk";
            } else if (line.startsWith("Added differentiated op")) {
                source = "nd4j";
            } else if (line.startsWith("[peft4j]") || line.startsWith("trainable params:") || line.startsWith("probe accuracy")) {
                source = "peft4j";
            } else if (line.isBlank()) {
                continue;
            } else {
                source = "unattributed";
            }
            counts.merge(source, 1, Integer::sum);
        }
        return counts;
    }

    private static List<String> runProbe(String... jvmOptions) throws Exception {
        Path agent = Path.of(System.getProperty("peft4j.agent.jar"));
        assertTrue(Files.isRegularFile(agent), "the agent is built at " + agent);
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "-javaagent:" + agent, "-Xmx2g", "-Dorg.bytedeco.javacpp.maxbytes=6G"));
        command.addAll(List.of(jvmOptions));
        command.addAll(List.of("-cp", System.getProperty("java.class.path"), QuietOutputProbe.class.getName()));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String out = new String(process.getInputStream().readAllBytes(), StandardCharsets.UTF_8);
        assertTrue(process.waitFor(5, TimeUnit.MINUTES), "the probe finished");
        assertEquals(0, process.exitValue(), out);
        return out.lines().flatMap(line -> List.of(line.split("\r")).stream()).toList();
    }

    @Test
    void onlyPeft4jLinesByDefaultAndNd4jsWhenAskedFor() throws Exception {
        List<String> quiet = runProbe();
        Map<String, Integer> sources = linesBySource(quiet);
        // the JVM's own line for the Vector API module, which the samples' JVMs load as the README says
        assertEquals(1, sources.remove("jdk"), "the JDK's incubator warning, once: " + String.join("\n", quiet));
        assertEquals(List.of("peft4j"), List.copyOf(sources.keySet()), "lines by source " + sources + ":\n" + String.join("\n", quiet));
        assertTrue(quiet.stream().anyMatch(line -> line.startsWith("[peft4j] replayed steps run elementwise ops")), String.join("\n", quiet));
        assertTrue(quiet.stream().anyMatch(line -> line.startsWith("[peft4j] epoch 1 done")), String.join("\n", quiet));

        List<String> verbose = runProbe("-Dpeft4j.verbose=true", "-Dorg.slf4j.simpleLogger.log.org.nd4j=info");
        Map<String, Integer> verboseSources = linesBySource(verbose);
        assertTrue(verboseSources.getOrDefault("nd4j", 0) > 10, "the switch restores ND4J's lines: " + verboseSources);
    }

}
