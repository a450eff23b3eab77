package io.peft4j.runtime.method;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.runtime.checkpoint.ConfigReader;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * Which modules an adapter config selects by name, with Hugging Face PEFT's rules
 * ({@code check_target_module_exists}), applied to peft4j's field paths ({@code encoder.layers.3.query}).
 *
 * <ul>
 *   <li>{@code target_modules}: a list (a path matches an entry it equals or ends with {@code "." + entry}),
 *       or one regular expression that must match the whole path; {@value #ALL_LINEAR} is expanded by
 *       the method to every layer it can adapt except the output head.</li>
 *   <li>{@code exclude_modules}: a list or a regular expression, with the same rules; wins over the targets.</li>
 *   <li>{@code layers_to_transform} with {@code layers_pattern}: only for the list form, keeps the paths whose
 *       first numbered segment ({@code <pattern>.<index>.}) is one of the indices.</li>
 *   <li>{@code modules_to_save}: never targets (a module trained whole cannot also carry an adapter).</li>
 * </ul>
 *
 * @param targetModules     the list form of {@code target_modules}, or empty
 * @param targetRegex       the string form of {@code target_modules}, or {@code null}
 * @param excludeModules    the list form of {@code exclude_modules}, or empty
 * @param excludeRegex      the string form of {@code exclude_modules}, or {@code null}
 * @param layersToTransform layer indices, or empty for every layer
 * @param layersPattern     the names of the layer lists ({@code layers}, {@code h}, ...), or empty for any
 * @param modulesToSave     the paths of modules trained and saved whole
 */
public record ModuleSelection(List<String> targetModules, String targetRegex, List<String> excludeModules, String excludeRegex,
                              List<Integer> layersToTransform, List<String> layersPattern, List<String> modulesToSave) {

    /** PEFT's shorthand for every linear layer except the output head. */
    public static final String ALL_LINEAR = "all-linear";

    public ModuleSelection {
        targetModules = List.copyOf(targetModules);
        excludeModules = List.copyOf(excludeModules);
        layersToTransform = List.copyOf(layersToTransform);
        layersPattern = List.copyOf(layersPattern);
        modulesToSave = List.copyOf(modulesToSave);
        requireRegex("target_modules", targetRegex);
        requireRegex("exclude_modules", excludeRegex);
    }

    /** How a path fares: selected, excluded (by {@code exclude_modules} or {@code modules_to_save}), or not targeted. */
    public enum Verdict { SELECTED, EXCLUDED, NOT_TARGETED }

    /** A list of target names. */
    public static ModuleSelection of(List<String> targets) {
        return new ModuleSelection(targets, null, List.of(), null, List.of(), List.of(), List.of());
    }

    /** One regular expression over whole paths, or {@value #ALL_LINEAR}. */
    public static ModuleSelection ofRegex(String regex) {
        return new ModuleSelection(List.of(), regex, List.of(), null, List.of(), List.of(), List.of());
    }

    /** Whether {@code target_modules} is {@value #ALL_LINEAR} (case-insensitive, as in PEFT). */
    public boolean allLinear() {
        return targetRegex != null && targetRegex.equalsIgnoreCase(ALL_LINEAR);
    }

    /** This selection with {@code target_modules} replaced by a list (how {@value #ALL_LINEAR} is expanded). */
    public ModuleSelection withTargets(List<String> targets) {
        return new ModuleSelection(targets, null, excludeModules, excludeRegex, layersToTransform, layersPattern, modulesToSave);
    }

    public ModuleSelection withExclude(List<String> exclude, String regex) {
        return new ModuleSelection(targetModules, targetRegex, exclude, regex, layersToTransform, layersPattern, modulesToSave);
    }

    public ModuleSelection withLayers(List<Integer> indices, List<String> patterns) {
        return new ModuleSelection(targetModules, targetRegex, excludeModules, excludeRegex, indices, patterns, modulesToSave);
    }

    public ModuleSelection withModulesToSave(List<String> paths) {
        return new ModuleSelection(targetModules, targetRegex, excludeModules, excludeRegex, layersToTransform, layersPattern, paths);
    }

    /** Whether the targets, before exclusions and layer indices, name anything at all. */
    public boolean hasTargets() {
        return targetRegex != null || !targetModules.isEmpty();
    }

    public Verdict judge(String path) {
        if (excludeRegex != null ? Pattern.matches(excludeRegex, path) : TargetModules.matchesAny(excludeModules, path)) {
            return Verdict.EXCLUDED;
        }
        for (String saved : modulesToSave) {
            if (path.equals(saved) || path.endsWith("." + saved) || path.startsWith(saved + ".") || path.contains("." + saved + ".")) {
                return Verdict.EXCLUDED;
            }
        }
        if (targetRegex != null) {
            return !allLinear() && Pattern.matches(targetRegex, path) ? Verdict.SELECTED : Verdict.NOT_TARGETED;
        }
        if (!TargetModules.matchesAny(targetModules, path)) {
            return Verdict.NOT_TARGETED;
        }
        if (layersToTransform.isEmpty() || targetModules.contains(path)) {
            return Verdict.SELECTED;
        }
        Integer index = layerIndex(path);
        return index != null && layersToTransform.contains(index) ? Verdict.SELECTED : Verdict.NOT_TARGETED;
    }

    public boolean selects(String path) {
        return judge(path) == Verdict.SELECTED;
    }

    /** The index of the first numbered segment of {@code path} after a {@code layers_pattern} name (any name when empty). */
    Integer layerIndex(String path) {
        List<String> patterns = layersPattern.isEmpty() ? List.of("[^.]*") : layersPattern;
        for (String pattern : patterns) {
            Matcher matcher = Pattern.compile(".*?\\." + pattern + "\\.(\\d+)\\.").matcher(path);
            if (matcher.lookingAt()) {
                return Integer.parseInt(matcher.group(1));
            }
        }
        return null;
    }

    /** {@code target_modules} as written, for messages. */
    public String describeTargets() {
        return targetRegex != null ? "'" + targetRegex + "'" : targetModules.toString();
    }

    /** Reads {@code target_modules}, {@code exclude_modules}, {@code layers_to_transform} and {@code layers_pattern}. */
    public static ModuleSelection read(ConfigReader reader, List<String> modulesToSave) {
        JsonNode config = reader.config();
        JsonNode targets = config.get("target_modules");
        String targetRegex = targets != null && targets.isTextual() ? targets.textValue() : null;
        JsonNode exclude = config.get("exclude_modules");
        String excludeRegex = exclude != null && exclude.isTextual() ? exclude.textValue() : null;
        List<Integer> indices = new ArrayList<>();
        JsonNode layers = config.get("layers_to_transform");
        if (layers != null && layers.isInt()) {
            indices.add(layers.intValue());
        } else if (layers != null && layers.isArray()) {
            for (JsonNode index : layers) {
                if (!index.isInt() || index.intValue() < 0) {
                    throw reader.configError("'layers_to_transform' must be a layer index or a list of them, got " + layers);
                }
                indices.add(index.intValue());
            }
        } else if (layers != null && !layers.isNull()) {
            throw reader.configError("'layers_to_transform' must be a layer index or a list of them, got " + layers);
        }
        try {
            return new ModuleSelection(targetRegex == null ? reader.strings("target_modules") : List.of(), targetRegex,
                    excludeRegex == null ? reader.strings("exclude_modules") : List.of(), excludeRegex, indices,
                    reader.strings("layers_pattern"), modulesToSave);
        } catch (IllegalArgumentException badRegex) {
            throw reader.configError(badRegex.getMessage());
        }
    }

    /** Writes the entries {@link #read} reads, as PEFT's config writes them ({@code null} where unset). */
    public void write(ObjectNode config) {
        if (targetRegex != null) {
            config.put("target_modules", targetRegex);
        } else {
            targetModules.forEach(config.putArray("target_modules")::add);
        }
        if (excludeRegex != null) {
            config.put("exclude_modules", excludeRegex);
        } else if (!excludeModules.isEmpty()) {
            excludeModules.forEach(config.putArray("exclude_modules")::add);
        } else {
            config.putNull("exclude_modules");
        }
        if (layersToTransform.isEmpty()) {
            config.putNull("layers_to_transform");
        } else {
            layersToTransform.forEach(config.putArray("layers_to_transform")::add);
        }
        if (layersPattern.isEmpty()) {
            config.putNull("layers_pattern");
        } else {
            layersPattern.forEach(config.putArray("layers_pattern")::add);
        }
    }

    private static void requireRegex(String key, String regex) {
        if (regex == null || regex.equalsIgnoreCase(ALL_LINEAR)) {
            return;
        }
        try {
            Pattern.compile(regex);
        } catch (PatternSyntaxException e) {
            throw new IllegalArgumentException("'" + key + "' is not a valid regular expression: " + e.getDescription() + " in '"
                    + regex + "'");
        }
    }
}
