package io.peft4j.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.File;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.jar.JarFile;
import java.util.jar.Manifest;
import java.util.stream.Collectors;
import org.junit.jupiter.api.Test;

/**
 * Runs the built, shaded {@code peft4j-agent.jar} the way users do, {@code -javaagent:} in a fresh
 * JVM whose class path has neither Byte Buddy nor the agent's classes: a manifest or relocation
 * mistake fails here although every in-process test passes.
 */
class AgentJarIT {

    private static final Path AGENT_JAR = Path.of(System.getProperty("peft4j.agent.jar", "target/peft4j-agent.jar"));

    @Test
    void manifestDeclaresTheAgentAndByteBuddyIsRelocated() throws Exception {
        try (JarFile jar = new JarFile(AGENT_JAR.toFile())) {
            Manifest manifest = jar.getManifest();
            assertEquals("io.peft4j.agent.PeftAgent", manifest.getMainAttributes().getValue("Premain-Class"));
            assertEquals("io.peft4j.agent.PeftAgent", manifest.getMainAttributes().getValue("Agent-Class"));
            assertEquals("true", manifest.getMainAttributes().getValue("Can-Retransform-Classes"));
            assertEquals("true", manifest.getMainAttributes().getValue("Can-Redefine-Classes"));
            assertFalse(jar.stream().anyMatch(entry -> entry.getName().contains("net/bytebuddy/")), "Byte Buddy is relocated");
            assertTrue(jar.stream().anyMatch(entry -> entry.getName().startsWith("io/peft4j/agent/shaded/bytebuddy/")));
            assertFalse(jar.stream().anyMatch(entry -> entry.getName().startsWith("io/peft4j/runtime/")),
                    "the runtime comes from the application's class path, not the agent jar");
        }
    }

    @Test
    void javaagentFlagInjectsLoraBranchesInAFreshJvm() throws Exception {
        String classPath = Arrays.stream(System.getProperty("java.class.path").split(File.pathSeparator))
                .filter(entry -> !entry.contains("byte-buddy"))
                .filter(entry -> !entry.contains("peft4j-agent") && !entry.replace('\\', '/').endsWith("agent/target/classes"))
                .collect(Collectors.joining(File.pathSeparator));
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Path log = Files.createTempFile("peft4j-agent-it", ".log");
        Process process = new ProcessBuilder(List.of(java, "-javaagent:" + AGENT_JAR.toAbsolutePath(), "-cp", classPath,
                "io.peft4j.agenttest.AgentProbe"))
                .redirectErrorStream(true).redirectOutput(log.toFile()).start();
        boolean finished = process.waitFor(180, TimeUnit.SECONDS);
        String output = Files.readString(log, StandardCharsets.UTF_8);
        assertTrue(finished, "the probe JVM did not finish:\n" + output);
        assertEquals(0, process.exitValue(), output);
        assertTrue(output.contains("LORA_BRANCH_INJECTED layers=[first, marked, tail.0]"), output);
    }
}
