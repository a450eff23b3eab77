package io.peft4j.runtime.ia3;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.annotations.IA3;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.checkpoint.ConfigReader;
import io.peft4j.runtime.method.MethodConfig;
import io.peft4j.runtime.method.ModuleSelection;
import io.peft4j.runtime.method.TargetModules;
import java.lang.annotation.Annotation;
import java.util.List;
import java.util.Objects;
import java.util.regex.Pattern;
import java.util.regex.PatternSyntaxException;

/**
 * (IA)³ settings that select layers by name (Hugging Face PEFT's {@code IA3Config}), and what peft4j
 * reads from and writes to an IA³ adapter's {@code adapter_config.json} ({@code peft_type: IA3}).
 *
 * <pre>{@code
 * PeftModel model = PeftModel.builder(net)
 *         .config(Ia3Config.targeting("key", "value", "output").feedforward("output"))
 *         .attach();
 * }</pre>
 *
 * <p>Targets follow {@link ModuleSelection} ({@code target_modules}, {@code exclude_modules}); the
 * feed-forward layers, whose input rather than output is rescaled, follow PEFT's own rule for
 * {@code feedforward_modules}: a regular expression matches the whole path, a list entry matches a path
 * that ends with it (plain suffix, as PEFT tests it), and every list entry must also be a
 * {@code target_modules} entry. Immutable: each setter returns a copy.
 */
public final class Ia3Config implements MethodConfig {

    private final ModuleSelection selection;
    private final List<String> feedforwardModules;
    private final String feedforwardRegex;
    private final boolean fanInFanOut;
    private final WeightLayout weightLayout;

    private Ia3Config(ModuleSelection selection, List<String> feedforwardModules, String feedforwardRegex, boolean fanInFanOut,
                      WeightLayout weightLayout) {
        this.selection = Objects.requireNonNull(selection);
        this.feedforwardModules = List.copyOf(feedforwardModules);
        this.feedforwardRegex = feedforwardRegex;
        this.fanInFanOut = fanInFanOut;
        this.weightLayout = Objects.requireNonNull(weightLayout);
        if (feedforwardRegex != null) {
            try {
                Pattern.compile(feedforwardRegex);
            } catch (PatternSyntaxException e) {
                throw new IllegalArgumentException("feedforward_modules '" + feedforwardRegex + "' is not a valid regular expression: "
                        + e.getDescription());
            }
        }
        if (!feedforwardModules.isEmpty() && selection.targetRegex() == null
                && !selection.targetModules().containsAll(feedforwardModules)) {
            throw new IllegalArgumentException("feedforward_modules " + feedforwardModules + " must be a subset of target_modules "
                    + selection.targetModules() + " (as in PEFT); name each feed-forward layer in both");
        }
    }

    /** IA³ output vectors on every layer whose path equals one of {@code modules} or ends with {@code "." + module}. */
    public static Ia3Config targeting(String... modules) {
        if (modules.length == 0) {
            throw new IllegalArgumentException("name at least one layer, e.g. Ia3Config.targeting(\"key\", \"value\", \"output\")");
        }
        return new Ia3Config(ModuleSelection.of(List.of(modules)), List.of(), null, false, WeightLayout.IN_OUT);
    }

    /** IA³ on every layer whose whole path {@code regex} matches. */
    public static Ia3Config targetingRegex(String regex) {
        return new Ia3Config(ModuleSelection.ofRegex(Objects.requireNonNull(regex, "regex")), List.of(), null, false, WeightLayout.IN_OUT);
    }

    /** IA³ on every layer with a forward method and one matrix weight except the output head (as {@code LoraConfig.allLinear()}). */
    public static Ia3Config allLinear() {
        return targetingRegex(ModuleSelection.ALL_LINEAR);
    }

    /** These targets rescale their input (PEFT's {@code feedforward_modules} as a list). */
    public Ia3Config feedforward(String... modules) {
        return new Ia3Config(selection, List.of(modules), null, fanInFanOut, weightLayout);
    }

    /** The targets whose whole path {@code regex} matches rescale their input (PEFT's {@code feedforward_modules} as a string). */
    public Ia3Config feedforwardRegex(String regex) {
        return new Ia3Config(selection, List.of(), Objects.requireNonNull(regex, "regex"), fanInFanOut, weightLayout);
    }

    /** Leaves out the layers these names select (PEFT's {@code exclude_modules}). */
    public Ia3Config exclude(String... modules) {
        return new Ia3Config(selection.withExclude(List.of(modules), null), feedforwardModules, feedforwardRegex, fanInFanOut, weightLayout);
    }

    /** Leaves out the layers whose whole path {@code regex} matches. */
    public Ia3Config excludeRegex(String regex) {
        return new Ia3Config(selection.withExclude(List.of(), Objects.requireNonNull(regex, "regex")), feedforwardModules, feedforwardRegex,
                fanInFanOut, weightLayout);
    }

    /** The layout of a selected layer's weight when it has no {@code @Weight} annotation ({@code [in, out]} by default). */
    public Ia3Config weightLayout(WeightLayout layout) {
        return new Ia3Config(selection, feedforwardModules, feedforwardRegex, fanInFanOut, layout);
    }

    @Override
    public Class<? extends Annotation> annotation() {
        return IA3.class;
    }

    /** Which layers it selects. */
    public ModuleSelection selection() {
        return selection;
    }

    WeightLayout layoutOfUnannotatedWeights() {
        return weightLayout;
    }

    /** Whether the layer at {@code path} is a feed-forward layer: PEFT's {@code re.fullmatch}, or a plain {@code endswith}. */
    boolean isFeedforward(String path) {
        if (feedforwardRegex != null) {
            return TargetModules.matchesRegex(feedforwardRegex, path);
        }
        return feedforwardModules.stream().anyMatch(path::endsWith);
    }

    /** Reads the IA³ entries of a saved config; every problem names the file and the key. */
    static Ia3Config read(ConfigReader saved, List<String> modulesToSave) {
        // init_ia3_weights only matters for new adapters: a saved adapter's vectors come from its file.
        JsonNode feedforward = saved.config().get("feedforward_modules");
        String regex = feedforward != null && feedforward.isTextual() ? feedforward.textValue() : null;
        try {
            return new Ia3Config(ModuleSelection.read(saved, modulesToSave), regex == null ? saved.strings("feedforward_modules") : List.of(),
                    regex, saved.bool("fan_in_fan_out", false), WeightLayout.IN_OUT);
        } catch (IllegalArgumentException e) {
            throw saved.configError(e.getMessage());
        }
    }

    /** A config as {@link Ia3Adapter} saves it. */
    static Ia3Config saved(List<String> targets, List<String> feedforward, boolean fanInFanOut) {
        return new Ia3Config(ModuleSelection.of(targets), feedforward, null, fanInFanOut, WeightLayout.IN_OUT);
    }

    /** The entries PEFT's {@code IA3Config} writes (the checkpoint code adds the common ones). */
    ObjectNode toJson() {
        ObjectNode root = JsonNodeFactory.instance.objectNode();
        selection.write(root);
        if (feedforwardRegex != null) {
            root.put("feedforward_modules", feedforwardRegex);
        } else {
            feedforwardModules.forEach(root.putArray("feedforward_modules")::add);
        }
        root.put("fan_in_fan_out", fanInFanOut);
        root.put("init_ia3_weights", true);
        return root;
    }

    @Override
    public String toString() {
        return "Ia3Config[target_modules=" + selection.describeTargets() + ", feedforward_modules="
                + (feedforwardRegex != null ? "'" + feedforwardRegex + "'" : feedforwardModules) + "]";
    }
}
