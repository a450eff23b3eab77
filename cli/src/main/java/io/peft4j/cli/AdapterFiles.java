package io.peft4j.cli;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.SafetensorsHeader;
import io.peft4j.runtime.method.PeftMethods;
import io.peft4j.runtime.method.PeftMethod;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;

/**
 * A saved adapter of any method, read without a model: its config, its header, and the method its
 * {@code peft_type} names (empty for a method peft4j does not know).
 */
record AdapterFiles(Path directory, JsonNode config, SafetensorsHeader header, Optional<PeftMethod> method) {

    static AdapterFiles open(Path directory) {
        Path configFile = directory.resolve(AdapterCheckpoint.CONFIG_FILE);
        Path weightsFile = directory.resolve(AdapterCheckpoint.WEIGHTS_FILE);
        if (!Files.isRegularFile(configFile) || !Files.isRegularFile(weightsFile)) {
            throw new CheckpointException(directory, "not a PEFT adapter directory: it needs " + AdapterCheckpoint.CONFIG_FILE
                    + " and " + AdapterCheckpoint.WEIGHTS_FILE);
        }
        JsonNode config = AdapterCheckpoint.readConfig(directory);
        SafetensorsHeader header = SafetensorsFile.readHeader(weightsFile);
        Optional<PeftMethod> method;
        try {
            method = Optional.of(PeftMethods.byPeftType(config.get("peft_type").asText()));
        } catch (PeftException unknown) {
            method = Optional.empty();
        }
        return new AdapterFiles(directory, config, header, method);
    }

    Path weightsFile() {
        return directory.resolve(AdapterCheckpoint.WEIGHTS_FILE);
    }

    Path configFile() {
        return directory.resolve(AdapterCheckpoint.CONFIG_FILE);
    }

    String peftType() {
        return config.path("peft_type").asText();
    }
}
