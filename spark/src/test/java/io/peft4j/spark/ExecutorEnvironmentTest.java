package io.peft4j.spark;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Optional;
import org.junit.jupiter.api.Test;

/** The driver's advice names exactly the settings some executor lacks, and nothing when all have them. */
class ExecutorEnvironmentTest {

    @Test
    void namesEachMissingSettingOnce() {
        Optional<String> advice = ExecutorEnvironment.advice(List.of(new ExecutorEnvironment(null, "4", false),
                new ExecutorEnvironment("PASSIVE", null, true), new ExecutorEnvironment(null, "", false)), false);
        assertTrue(advice.isPresent());
        String line = advice.get();
        assertTrue(line.contains("--conf spark.executorEnv.OMP_WAIT_POLICY=PASSIVE --conf spark.executorEnv.OPENBLAS_THREAD_TIMEOUT=4 "
                + "--conf spark.executorEnv.OPENBLAS_CORETYPE=SkylakeX"), line);
        assertEquals(line.indexOf("OMP_WAIT_POLICY"), line.lastIndexOf("OMP_WAIT_POLICY"), "once: " + line);
    }

    @Test
    void nothingWhenEveryExecutorHasThemOrChoseOtherValues() {
        assertEquals(Optional.empty(), ExecutorEnvironment.advice(List.of(new ExecutorEnvironment("PASSIVE", "4", false),
                new ExecutorEnvironment("ACTIVE", "10", false)), false));
    }

    @Test
    void inLocalModeNamesThisJvmsVariables() {
        String line = ExecutorEnvironment.advice(List.of(new ExecutorEnvironment(null, null, false)), true).orElseThrow();
        assertTrue(line.contains("start this JVM with OMP_WAIT_POLICY=PASSIVE OPENBLAS_THREAD_TIMEOUT=4 in its environment"), line);
    }
}
