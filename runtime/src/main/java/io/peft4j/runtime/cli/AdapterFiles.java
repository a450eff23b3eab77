package io.peft4j.runtime.cli;

import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.AdapterConfig;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.SafetensorsHeader;
import io.peft4j.runtime.checkpoint.TensorInfo;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A saved LoRA adapter read without a model: its config, its header and its layers, named by
 * the {@code base_model.model.<layer>.lora_A/B.weight} keys.
 */
record AdapterFiles(Path directory, AdapterConfig config, SafetensorsHeader header, Map<String, TensorInfo[]> layers,
                    List<TensorInfo> otherTensors) {

    private static final String PREFIX = "base_model.model.";

    static AdapterFiles open(Path directory) {
        Path configFile = directory.resolve(AdapterCheckpoint.CONFIG_FILE);
        Path weightsFile = directory.resolve(AdapterCheckpoint.WEIGHTS_FILE);
        if (!Files.isRegularFile(configFile) || !Files.isRegularFile(weightsFile)) {
            throw new CheckpointException(directory, "not a PEFT adapter directory: it needs " + AdapterCheckpoint.CONFIG_FILE
                    + " and " + AdapterCheckpoint.WEIGHTS_FILE);
        }
        AdapterConfig config;
        try {
            config = AdapterConfig.parse(configFile, Files.readAllBytes(configFile));
        } catch (IOException e) {
            throw new CheckpointException(configFile, "cannot be read: " + e, e);
        }
        SafetensorsHeader header = SafetensorsFile.readHeader(weightsFile);
        Map<String, TensorInfo[]> layers = new LinkedHashMap<>();
        List<TensorInfo> others = new ArrayList<>();
        for (TensorInfo tensor : header.tensors()) {
            String name = tensor.name();
            boolean isA = name.endsWith(".lora_A.weight");
            boolean isB = name.endsWith(".lora_B.weight");
            if (!name.startsWith(PREFIX) || !(isA || isB)) {
                others.add(tensor);
                continue;
            }
            String layer = name.substring(PREFIX.length(), name.length() - ".lora_A.weight".length());
            layers.computeIfAbsent(layer, key -> new TensorInfo[2])[isA ? 0 : 1] = tensor;
        }
        return new AdapterFiles(directory, config, header, layers, others);
    }

    Path weightsFile() {
        return directory.resolve(AdapterCheckpoint.WEIGHTS_FILE);
    }

    Path configFile() {
        return directory.resolve(AdapterCheckpoint.CONFIG_FILE);
    }

    /** {@code alpha / r} (or {@code / √r}) for {@code layer} under this adapter's config. */
    double scaling(String layer) {
        int rank = config.rankOf(layer);
        return config.alphaOf(layer) / (config.useRslora() ? Math.sqrt(rank) : rank);
    }
}
