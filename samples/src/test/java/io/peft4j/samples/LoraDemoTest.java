package io.peft4j.samples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.agent.PeftAgent;
import io.peft4j.samples.transformer.TransformerConfig;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/**
 * The README's sample, smaller: the processor-generated {@code Linear_LoRA}, the self-attached
 * agent and the runtime together adapt the transformer to the shifted task and merge exactly.
 */
class LoraDemoTest {

    @BeforeAll
    static void installAgent() {
        PeftAgent.install();
    }

    @TempDir
    Path savedRun;

    @Test
    void loraAdaptsTheFrozenTransformerSavesReloadsAndMergesExactly() {
        LoraDemo.Settings quick = new LoraDemo.Settings(new TransformerConfig(32, 16, 64, 4, 2, 128, 8),
                2048, 512, 64, 3, 4, 3e-3, 1e-2, 42);
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        LoraDemo.Result result = LoraDemo.run(quick, new PrintStream(printed, true, StandardCharsets.UTF_8), savedRun);
        String output = printed.toString(StandardCharsets.UTF_8);

        assertTrue(result.baseAccuracyOnBaseTask() > 0.95, output);
        assertTrue(result.accuracyBeforeAdaptation() < 0.7, "the marker is new to the base model: " + output);
        assertTrue(result.accuracyAfterAdaptation() > result.accuracyBeforeAdaptation() + 0.2, output);
        // r · (in + out) for query and value in each of two layers: 2 · 2 · 8 · (64 + 64)
        assertEquals(4096, result.parameters().trainable());
        assertTrue(result.mergeMaxRelativeDifference() < 1e-5, output);
        assertTrue(result.loraTraining().meanOfLast(10) < result.loraTraining().meanOfFirst(10), output);
        assertTrue(output.contains("trainable params: 4,096 || all params: 74,632 || trainable%: 5.4883"), output);

        double reloaded = LoraReload.verify(savedRun, quick, new PrintStream(printed, true, StandardCharsets.UTF_8));
        assertEquals(0.0, reloaded, "a fresh model with the saved base and adapter predicts the same logits");
    }
}
