package io.peft4j.runtime.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.runtime.checkpoint.ConfigReader;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.method.TargetModules;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * The LoRA entries of Hugging Face PEFT's {@code adapter_config.json}.
 *
 * <p>Layers whose rank or alpha differ from {@code r} / {@code lora_alpha} are listed in
 * {@code rank_pattern} / {@code alpha_pattern}; a pattern key applies to a module whose name equals it,
 * ends with {@code "." + key}, or that {@code (.*\.)?key} matches as a regular expression, as in PEFT.
 * {@code target_modules} is a list (a module matches an entry it equals or ends with
 * {@code "." + entry}) or one regular expression (full match).
 *
 * @param targetModules   the list form of {@code target_modules}, or empty
 * @param targetRegex     the string form of {@code target_modules}, or {@code null}
 */
record LoraConfig(int r, double loraAlpha, double loraDropout, boolean useRslora, List<String> targetModules, String targetRegex,
                  boolean fanInFanOut, Map<String, Integer> rankPattern, Map<String, Double> alphaPattern, List<String> modulesToSave) {

    /** Reads and checks the LoRA entries of {@code saved}'s config; every problem names the file and the key. */
    static LoraConfig read(SavedAdapter saved) {
        return read(saved.reader(), saved.modulesToSave());
    }

    /** Reads and checks the LoRA entries of a config; {@code modulesToSave} are never targets. */
    static LoraConfig read(ConfigReader saved, List<String> modulesToSave) {
        JsonNode config = saved.config();
        int r = saved.positiveInt("r", 8);
        double alpha = saved.finiteNumber("lora_alpha", 8);
        if (!(alpha > 0)) {
            throw saved.configError("'lora_alpha' must be positive, got " + alpha);
        }
        double dropout = saved.finiteNumber("lora_dropout", 0);
        if (!(dropout >= 0 && dropout < 1)) {
            throw saved.configError("'lora_dropout' must be in [0, 1), got " + dropout);
        }
        String bias = saved.text("bias", "none");
        if (!bias.equals("none")) {
            throw saved.configError("has bias = '" + bias + "': peft4j trains and loads no biases with LoRA (bias = 'none')");
        }
        if (saved.bool("use_dora", false)) {
            throw saved.configError("is a DoRA adapter (use_dora = true), which peft4j does not load yet");
        }
        JsonNode targets = config.get("target_modules");
        String regex = targets != null && targets.isTextual() ? targets.textValue() : null;
        List<String> list = regex == null ? saved.strings("target_modules") : List.of();
        Map<String, Integer> ranks = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> fields = config.path("rank_pattern").fields(); fields.hasNext(); ) {
            Map.Entry<String, JsonNode> field = fields.next();
            ranks.put(field.getKey(), saved.positiveInt("rank_pattern." + field.getKey(), field.getValue()));
        }
        Map<String, Double> alphas = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> fields = config.path("alpha_pattern").fields(); fields.hasNext(); ) {
            Map.Entry<String, JsonNode> field = fields.next();
            double value = saved.finiteNumber("alpha_pattern." + field.getKey(), field.getValue());
            if (!(value > 0)) {
                throw saved.configError("'alpha_pattern." + field.getKey() + "' must be positive, got " + value);
            }
            alphas.put(field.getKey(), value);
        }
        return new LoraConfig(r, alpha, dropout, saved.bool("use_rslora", false), list, regex, saved.bool("fan_in_fan_out", false),
                ranks, alphas, modulesToSave);
    }

    /** Whether {@code target_modules} selects the module {@code name} (modules saved whole are never targets, as in PEFT). */
    boolean targets(String name) {
        if (TargetModules.matchesAny(modulesToSave, name) || modulesToSave.stream().anyMatch(m -> name.startsWith(m + "."))) {
            return false;
        }
        return targetRegex != null ? TargetModules.matchesRegex(targetRegex, name) : TargetModules.matchesAny(targetModules, name);
    }

    /** {@code target_modules} as written, for messages. */
    String describeTargets() {
        return targetRegex != null ? "'" + targetRegex + "'" : targetModules.toString();
    }

    int rankOf(String name) {
        return matching(rankPattern, name).orElse(r);
    }

    double alphaOf(String name) {
        return matching(alphaPattern, name).orElse(loraAlpha);
    }

    LoraSettings settingsOf(String name) {
        return new LoraSettings(rankOf(name), alphaOf(name), loraDropout, useRslora);
    }

    /** The scale the config gives module {@code name}. */
    double scalingOf(String name) {
        return settingsOf(name).scaling();
    }

    private static <V> Optional<V> matching(Map<String, V> pattern, String name) {
        for (Map.Entry<String, V> entry : pattern.entrySet()) {
            String key = entry.getKey();
            if (name.equals(key) || name.endsWith("." + key) || TargetModules.matchesRegex("(.*\\.)?(" + key + ")", name)) {
                return Optional.of(entry.getValue());
            }
        }
        return Optional.empty();
    }

    /** The entries PEFT's {@code LoraConfig} writes (the checkpoint code adds the common ones). */
    ObjectNode toJson() {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        root.put("r", r);
        root.put("lora_alpha", loraAlpha);
        root.put("lora_dropout", loraDropout);
        root.put("use_rslora", useRslora);
        if (targetRegex != null) {
            root.put("target_modules", targetRegex);
        } else {
            targetModules.forEach(root.putArray("target_modules")::add);
        }
        root.put("bias", "none");
        root.put("fan_in_fan_out", fanInFanOut);
        root.put("init_lora_weights", true);
        root.putNull("layers_to_transform");
        root.putNull("layers_pattern");
        ObjectNode ranks = root.putObject("rank_pattern");
        rankPattern.forEach(ranks::put);
        ObjectNode alphas = root.putObject("alpha_pattern");
        alphaPattern.forEach(alphas::put);
        return root;
    }
}
