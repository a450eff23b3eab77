package io.peft4j.runtime.training;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.NonFinitePolicy;
import io.peft4j.runtime.NonFiniteTrainingException;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.TrainingOptions;
import io.peft4j.runtime.TrainingReport;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The non-finite guard, training checkpoints, and a run killed with SIGKILL and resumed. */
class TrainingGuardsTest {

    @TempDir
    Path dir;

    private static ProgressListener quiet() {
        return new ProgressListener(null, 100);
    }

    private static void assertSame(List<float[]> expected, List<float[]> actual, String what) {
        assertEquals(expected.size(), actual.size());
        for (int i = 0; i < expected.size(); i++) {
            assertArrayEquals(expected.get(i), actual.get(i), 0f, what + ", tensor " + i);
        }
    }

    @Test
    void aNonFiniteStepIsUndoneAndStopsTrainingNamingStepAndVariable() throws IOException {
        TrainingRun clean = new TrainingRun();
        clean.train(1, TrainingRun.batches(-1).subList(0, 3), TrainingOptions.defaults(), quiet());
        List<float[]> afterThreeGoodSteps = clean.adapter();

        TrainingRun run = new TrainingRun();
        Path checkpoints = dir.resolve("checkpoints");
        NonFiniteTrainingException error = assertThrows(NonFiniteTrainingException.class,
                () -> run.train(1, TrainingRun.batches(3), TrainingOptions.defaults().withCheckpoints(checkpoints, 1), quiet()));
        assertEquals(3, error.step(), error.getMessage());
        assertTrue(error.getMessage().contains("non-finite") && error.variable() != null && error.variable().contains("lora_"),
                error.getMessage());
        assertSame(afterThreeGoodSteps, run.adapter(), "the failed step was undone");
        try (Stream<Path> written = Files.list(checkpoints)) {
            assertEquals(List.of("step-000000002", "step-000000003"), written.map(path -> path.getFileName().toString()).sorted().toList(),
                    "the newest two checkpoints, up to the last good step");
        }
        TrainingRun fromCheckpoint = new TrainingRun();
        fromCheckpoint.train(1, TrainingRun.batches(-1).subList(0, 3),
                TrainingOptions.defaults().withCheckpoints(checkpoints, 1).withResume(true), quiet());
        assertSame(afterThreeGoodSteps, fromCheckpoint.adapter(), "the newest checkpoint is the last good step, intact");
    }

    @Test
    void skippingANonFiniteBatchTrainsAsIfItWereNotThere() {
        List<org.nd4j.linalg.dataset.api.MultiDataSet> poisoned = TrainingRun.batches(3);
        List<org.nd4j.linalg.dataset.api.MultiDataSet> without = new ArrayList<>(TrainingRun.batches(-1));
        without.remove(3);
        TrainingRun skipping = new TrainingRun();
        TrainingReport report = skipping.train(1, poisoned, TrainingOptions.defaults().withNonFinite(NonFinitePolicy.SKIP_BATCH), quiet());
        TrainingRun clean = new TrainingRun();
        clean.train(1, without, TrainingOptions.defaults(), quiet());
        assertSame(clean.adapter(), skipping.adapter(), "skipping batch 3 equals training without it");
        assertEquals(TrainingRun.BATCHES, report.steps(), "the skipped step is still reported");
    }

    @Test
    void resumingFromACheckpointEndsWithTheSameAdapterAsAnUninterruptedRun() {
        TrainingRun uninterrupted = new TrainingRun();
        uninterrupted.train(3, TrainingRun.batches(-1), TrainingOptions.defaults(), quiet());

        Path checkpoints = dir.resolve("checkpoints");
        TrainingRun first = new TrainingRun();
        first.train(1, TrainingRun.batches(-1).subList(0, 5), TrainingOptions.defaults().withCheckpoints(checkpoints, 5), quiet());
        // as if the run stopped after 5 of the first epoch's 8 batches: resume on the whole data
        TrainingRun resumed = new TrainingRun();
        resumed.train(3, TrainingRun.batches(-1), TrainingOptions.defaults().withCheckpoints(checkpoints, 5).withResume(true), quiet());
        assertSame(uninterrupted.adapter(), resumed.adapter(), "resumed mid-epoch");
    }

    @Test
    void aRunKilledWithSigkillResumesToTheSameAdapter() throws Exception {
        TrainingRun uninterrupted = new TrainingRun();
        uninterrupted.train(3, TrainingRun.batches(-1), TrainingOptions.defaults(), quiet());

        Path checkpoints = dir.resolve("killed");
        Process child = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("surefire.test.class.path", System.getProperty("java.class.path")),
                TrainingRun.class.getName(), checkpoints.toString(), "3", "150").redirectErrorStream(true).start();
        int lastStep = 0;
        Pattern step = Pattern.compile("step\\s+(\\d+)");
        try (BufferedReader out = new BufferedReader(new InputStreamReader(child.getInputStream(), StandardCharsets.UTF_8))) {
            for (String line; (line = out.readLine()) != null; ) {
                Matcher matcher = step.matcher(line);
                if (line.startsWith("[peft4j]") && matcher.find()) {
                    lastStep = Integer.parseInt(matcher.group(1));
                    if (lastStep >= 13) {
                        child.destroyForcibly(); // SIGKILL: no shutdown hook, no finally block
                        break;
                    }
                }
            }
        }
        assertTrue(child.waitFor(30, TimeUnit.SECONDS));
        assertEquals(137, child.exitValue(), "killed by SIGKILL");
        assertTrue(lastStep >= 13 && lastStep < 24, "killed mid-run, after step " + lastStep);

        TrainingRun resumed = new TrainingRun();
        resumed.train(3, TrainingRun.batches(-1), TrainingOptions.defaults().withCheckpoints(checkpoints, 3).withResume(true), quiet());
        assertSame(uninterrupted.adapter(), resumed.adapter(), "killed after step " + lastStep + " and resumed");
        assertFalse(uninterrupted.adapter().isEmpty());
    }
}
