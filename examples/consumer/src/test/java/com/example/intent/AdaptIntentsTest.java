package com.example.intent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.checkpoint.SafetensorsFile;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** The application's adapter life cycle, run by Surefire with {@code -javaagent} as the pom sets it up. */
class AdaptIntentsTest {

    @TempDir
    Path output;

    @Test
    void loraLearnsTheNewIntentsAndTheMergedWeightsNeedNoPeft4j() throws Exception {
        ByteArrayOutputStream printed = new ByteArrayOutputStream();
        AdaptIntents.Result result = AdaptIntents.run(new AdaptIntents.Settings(2048, 512, 64, 6, 6, 7),
                new PrintStream(printed, true, StandardCharsets.UTF_8), output);
        String log = printed.toString(StandardCharsets.UTF_8);

        assertTrue(result.baseAccuracy() > 0.8, "the base learned the old intents: " + log);
        assertTrue(result.accuracyBefore() < 0.3, "renumbered intents defeat the base: " + log);
        assertTrue(result.accuracyAfter() > 0.8, "LoRA learned the new numbering: " + log);
        // A [r, in] and B [out, r] per @LoRA field: 4·(32 + 64) + 4·(64 + 4)
        assertEquals(4 * (32 + 64) + 4 * (64 + 4), result.parameters().trainable(), log);
        assertEquals(0.0, result.reloadMaxDifference(), "a fresh model with the saved adapter reproduces the logits bit for bit");
        assertTrue(result.mergedMaxDifference() < 1e-4, "the merged weights give the adapted logits: " + log);

        assertTrue(Files.exists(result.adapter().resolve("adapter_config.json")));
        assertEquals(4, SafetensorsFile.read(result.adapter().resolve("adapter_model.safetensors")).size(), "lora_A and lora_B of two layers");
        assertTrue(Files.readString(result.adapter().resolve("adapter_config.json")).contains("\"peft_type\" : \"LORA\"")
                || Files.readString(result.adapter().resolve("adapter_config.json")).contains("\"peft_type\":\"LORA\""));
    }

    @Test
    void theProcessorGeneratedATypedMergeUtility() throws Exception {
        Class<?> generated = Class.forName("com.example.intent.Dense_LoRA");
        assertEquals("Dense_LoRA", generated.getSimpleName());
    }
}
