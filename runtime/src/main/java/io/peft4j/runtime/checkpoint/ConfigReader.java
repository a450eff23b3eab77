package io.peft4j.runtime.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/**
 * Strict readers of an {@code adapter_config.json}'s values: a number where an integer is required,
 * a string where a number is, or a non-finite number is an error naming the file and the key. Keys
 * that are absent or {@code null} take the caller's default.
 */
public final class ConfigReader {

    private final Path file;
    private final JsonNode config;

    public ConfigReader(Path file, JsonNode config) {
        this.file = file;
        this.config = config;
    }

    public JsonNode config() {
        return config;
    }

    /** A problem with the config, naming its file. */
    public CheckpointException configError(String problem) {
        return new CheckpointException(file, problem);
    }

    /** A required positive integer. */
    public int positiveInt(String key) {
        JsonNode node = config.get(key);
        if (node == null || node.isNull()) {
            throw configError("has no '" + key + "'");
        }
        return positiveInt(key, node);
    }

    /** A positive integer, or {@code fallback} when the key is absent or null. */
    public int positiveInt(String key, int fallback) {
        JsonNode node = config.get(key);
        return node == null || node.isNull() ? fallback : positiveInt(key, node);
    }

    /** A positive integer value of {@code key} (in a pattern map, say), checked strictly. */
    public int positiveInt(String key, JsonNode node) {
        if (!node.isIntegralNumber() || !node.canConvertToInt() || node.intValue() <= 0) {
            throw configError("'" + key + "' must be a positive integer, got " + node);
        }
        return node.intValue();
    }

    /** A finite number, or {@code fallback} when the key is absent or null. */
    public double finiteNumber(String key, double fallback) {
        JsonNode node = config.get(key);
        return node == null || node.isNull() ? fallback : finiteNumber(key, node);
    }

    /** A finite number value of {@code key}, checked strictly. */
    public double finiteNumber(String key, JsonNode node) {
        if (!node.isNumber() || !Double.isFinite(node.doubleValue())) {
            throw configError("'" + key + "' must be a finite number, got " + node);
        }
        return node.doubleValue();
    }

    public boolean bool(String key, boolean fallback) {
        JsonNode node = config.get(key);
        if (node == null || node.isNull()) {
            return fallback;
        }
        if (!node.isBoolean()) {
            throw configError("'" + key + "' must be true or false, got " + node);
        }
        return node.booleanValue();
    }

    public String text(String key, String fallback) {
        JsonNode node = config.get(key);
        if (node == null || node.isNull()) {
            return fallback;
        }
        if (!node.isTextual()) {
            throw configError("'" + key + "' must be a string, got " + node);
        }
        return node.textValue();
    }

    /** A list of strings (a single string counts as one); empty when absent or null. */
    public List<String> strings(String key) {
        JsonNode node = config.get(key);
        List<String> values = new ArrayList<>();
        if (node == null || node.isNull()) {
            return values;
        }
        if (node.isTextual()) {
            values.add(node.textValue());
            return values;
        }
        if (!node.isArray()) {
            throw configError("'" + key + "' must be a list of strings, got " + node);
        }
        for (JsonNode element : node) {
            if (!element.isTextual()) {
                throw configError("'" + key + "' must be a list of strings, got " + node);
            }
            values.add(element.textValue());
        }
        return values;
    }
}
