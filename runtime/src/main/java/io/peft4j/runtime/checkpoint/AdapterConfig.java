package io.peft4j.runtime.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * The contents of Hugging Face PEFT's {@code adapter_config.json} for a LoRA adapter.
 *
 * <p>Layers whose rank or alpha differ from {@code r} / {@code lora_alpha} are listed in
 * {@code rank_pattern} / {@code alpha_pattern}, keyed by layer name; on reading, a pattern key
 * applies to a layer whose name equals it or ends with {@code "." + key}, or that it matches as a
 * regular expression, as in PEFT. Keys peft4j does not use are ignored (logged at debug level), so
 * configs written by newer PEFT versions load.
 */
public record AdapterConfig(String peftType, String taskType, int r, double loraAlpha, double loraDropout,
                            boolean useRslora, List<String> targetModules, String bias, boolean fanInFanOut,
                            String baseModelNameOrPath, boolean inferenceMode, Map<String, Integer> rankPattern,
                            Map<String, Double> alphaPattern) {

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final System.Logger LOG = System.getLogger(AdapterConfig.class.getName());
    private static final Set<String> KNOWN = Set.of("peft_type", "task_type", "r", "lora_alpha", "lora_dropout",
            "use_rslora", "target_modules", "bias", "fan_in_fan_out", "base_model_name_or_path", "inference_mode",
            "rank_pattern", "alpha_pattern");

    /** The rank of layer {@code name}: its {@code rank_pattern} entry if one applies, else {@code r}. */
    public int rankOf(String name) {
        return matching(rankPattern, name).orElse(r);
    }

    /** The alpha of layer {@code name}: its {@code alpha_pattern} entry if one applies, else {@code lora_alpha}. */
    public double alphaOf(String name) {
        return matching(alphaPattern, name).orElse(loraAlpha);
    }

    private static <V> java.util.Optional<V> matching(Map<String, V> pattern, String name) {
        for (Map.Entry<String, V> entry : pattern.entrySet()) {
            String key = entry.getKey();
            if (name.equals(key) || name.endsWith("." + key) || matchesRegex(key, name)) {
                return java.util.Optional.of(entry.getValue());
            }
        }
        return java.util.Optional.empty();
    }

    private static boolean matchesRegex(String key, String name) {
        try {
            return Pattern.compile("(.*\\.)?" + key).matcher(name).matches();
        } catch (PatternSyntaxException notARegex) {
            return false;
        }
    }

    /** The JSON text, pretty-printed, keys in PEFT's order. */
    public byte[] toJson() {
        ObjectNode root = JSON.createObjectNode();
        root.put("peft_type", peftType);
        root.put("task_type", taskType);
        root.put("r", r);
        root.put("lora_alpha", loraAlpha);
        root.put("lora_dropout", loraDropout);
        root.put("use_rslora", useRslora);
        targetModules.forEach(root.putArray("target_modules")::add);
        root.put("bias", bias);
        root.put("fan_in_fan_out", fanInFanOut);
        root.put("base_model_name_or_path", baseModelNameOrPath);
        root.put("inference_mode", inferenceMode);
        ObjectNode ranks = root.putObject("rank_pattern");
        rankPattern.forEach(ranks::put);
        ObjectNode alphas = root.putObject("alpha_pattern");
        alphaPattern.forEach(alphas::put);
        try {
            return JSON.writeValueAsBytes(root);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a tree of strings and numbers always serialises", e);
        }
    }

    /** Parses {@code bytes}, read from {@code file}; every problem names the file. */
    public static AdapterConfig parse(Path file, byte[] bytes) {
        JsonNode root;
        try {
            root = JSON.readTree(new String(bytes, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new CheckpointException(file, "malformed JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new CheckpointException(file, "malformed adapter config: the JSON must be an object");
        }
        for (Iterator<String> names = root.fieldNames(); names.hasNext(); ) {
            String name = names.next();
            if (!KNOWN.contains(name)) {
                LOG.log(System.Logger.Level.DEBUG, "{0}: ignoring key ''{1}'' that peft4j does not use", file, name);
            }
        }
        String peftType = root.path("peft_type").asText("");
        if (!peftType.equals("LORA")) {
            throw new CheckpointException(file, "peft_type is '" + peftType + "', but peft4j loads LORA adapters here");
        }
        if (!root.path("r").canConvertToInt() || root.path("r").asInt() <= 0) {
            throw new CheckpointException(file, "r must be a positive integer, got " + root.path("r"));
        }
        List<String> targets = new ArrayList<>();
        root.path("target_modules").forEach(target -> targets.add(target.asText()));
        if (root.path("target_modules").isTextual()) {
            targets.add(root.get("target_modules").asText());
        }
        Map<String, Integer> ranks = new LinkedHashMap<>();
        root.path("rank_pattern").fields().forEachRemaining(entry -> ranks.put(entry.getKey(), entry.getValue().asInt()));
        Map<String, Double> alphas = new LinkedHashMap<>();
        root.path("alpha_pattern").fields().forEachRemaining(entry -> alphas.put(entry.getKey(), entry.getValue().asDouble()));
        return new AdapterConfig(peftType, textOrNull(root.path("task_type")), root.get("r").asInt(),
                root.path("lora_alpha").asDouble(8), root.path("lora_dropout").asDouble(0), root.path("use_rslora").asBoolean(false),
                List.copyOf(targets), root.path("bias").asText("none"), root.path("fan_in_fan_out").asBoolean(false),
                textOrNull(root.path("base_model_name_or_path")), root.path("inference_mode").asBoolean(true),
                Map.copyOf(ranks), Map.copyOf(alphas));
    }

    private static String textOrNull(JsonNode node) {
        return node.isTextual() ? node.asText() : null;
    }
}
