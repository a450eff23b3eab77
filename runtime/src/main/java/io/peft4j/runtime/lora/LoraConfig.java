package io.peft4j.runtime.lora;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.LoraInit;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.checkpoint.ConfigReader;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.method.MethodConfig;
import io.peft4j.runtime.method.ModuleSelection;
import io.peft4j.runtime.method.TargetModules;
import java.lang.annotation.Annotation;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;

/**
 * LoRA settings that select layers by name, for model code one cannot annotate: Hugging Face PEFT's
 * {@code LoraConfig}, and what peft4j reads from and writes to a saved adapter's {@code adapter_config.json}.
 *
 * <pre>{@code
 * PeftModel model = PeftModel.builder(net)
 *         .config(LoraConfig.targeting("query", "value").rank(8).alpha(16).exclude("layers.0.query"))
 *         .attach();
 * }</pre>
 *
 * <p>Layer paths are the model's field paths ({@code encoder.layers.3.query}). A selected layer needs a
 * forward method and one matrix weight {@code [in, out]} (or {@code [out, in]}, see {@link #weightLayout}):
 * the {@code @Weight} field, or the only rank-2 {@code SDVariable}/{@code INDArray} field of the class.
 * Selection follows {@link ModuleSelection}; where this config and a {@code @LoRA} annotation both name a
 * layer, the config's settings win, and a layer the config excludes is not adapted even if annotated.
 * Immutable: each setter returns a copy.
 *
 * <p>PEFT key for each setting: {@code rank} → {@code r}, {@code alpha} → {@code lora_alpha},
 * {@code dropout} → {@code lora_dropout}, {@code rslora} → {@code use_rslora}, {@code exclude} →
 * {@code exclude_modules},
 * {@code dora} → {@code use_dora}, {@code init} → {@code init_lora_weights}, and
 * {@code layers_to_transform}, {@code layers_pattern}, {@code rank_pattern}, {@code alpha_pattern} by their own names.
 */
public final class LoraConfig implements MethodConfig {

    // Not final so that each setter can change one field of a private copy; never changed after that.
    private int r;
    private double loraAlpha;
    private double loraDropout;
    private boolean useRslora;
    private boolean useDora;
    private LoraInit initLoraWeights = LoraInit.DEFAULT;
    private ModuleSelection selection;
    private boolean fanInFanOut;
    private Map<String, Integer> rankPattern;
    private Map<String, Double> alphaPattern;
    private WeightLayout weightLayout;

    LoraConfig(int r, double loraAlpha, double loraDropout, boolean useRslora, ModuleSelection selection, boolean fanInFanOut,
               Map<String, Integer> rankPattern, Map<String, Double> alphaPattern, WeightLayout weightLayout) {
        this.r = r;
        this.loraAlpha = loraAlpha;
        this.loraDropout = loraDropout;
        this.useRslora = useRslora;
        this.selection = Objects.requireNonNull(selection);
        this.fanInFanOut = fanInFanOut;
        this.rankPattern = Collections.unmodifiableMap(new LinkedHashMap<>(rankPattern));
        this.alphaPattern = Collections.unmodifiableMap(new LinkedHashMap<>(alphaPattern));
        this.weightLayout = Objects.requireNonNull(weightLayout);
        validate();
    }

    private void validate() {
        new LoraSettings(r, loraAlpha, loraDropout, useRslora);
        rankPattern.forEach((key, rank) -> new LoraSettings(rank, loraAlpha, loraDropout, useRslora));
        alphaPattern.forEach((key, alpha) -> new LoraSettings(r, alpha, loraDropout, useRslora));
    }

    /**
     * LoRA on every layer whose path equals one of {@code modules} or ends with {@code "." + module};
     * PEFT's defaults otherwise (rank 8, alpha 8, no dropout).
     */
    public static LoraConfig targeting(String... modules) {
        if (modules.length == 0) {
            throw new IllegalArgumentException("name at least one layer, e.g. LoraConfig.targeting(\"query\", \"value\")");
        }
        return of(ModuleSelection.of(List.of(modules)));
    }

    /** LoRA on every layer whose whole path {@code regex} matches, e.g. {@code "encoder\\.layers\\.[0-2]\\.(query|value)"}. */
    public static LoraConfig targetingRegex(String regex) {
        return of(ModuleSelection.ofRegex(Objects.requireNonNull(regex, "regex")));
    }

    /**
     * LoRA on every layer with a forward method and one matrix weight, except the output head: layers
     * named {@code lm_head}, {@code score}, {@code classifier} or {@code head} (PEFT's heuristics, which
     * read the same names) and the layers trained whole ({@code alsoTrain}); exclude others with
     * {@link #exclude}.
     */
    public static LoraConfig allLinear() {
        return of(ModuleSelection.ofRegex(ModuleSelection.ALL_LINEAR));
    }

    private static LoraConfig of(ModuleSelection selection) {
        return new LoraConfig(8, 8, 0, false, selection, false, Map.of(), Map.of(), WeightLayout.IN_OUT);
    }

    /** The rank r (PEFT's {@code r}). */
    public LoraConfig rank(int value) {
        return copy(copy -> copy.r = value);
    }

    /** The scaling numerator (PEFT's {@code lora_alpha}). */
    public LoraConfig alpha(double value) {
        return copy(copy -> copy.loraAlpha = value);
    }

    /** Dropout on the branch's input while training (PEFT's {@code lora_dropout}). */
    public LoraConfig dropout(double value) {
        return copy(copy -> copy.loraDropout = value);
    }

    /** {@code s = alpha / √r} instead of {@code alpha / r} (PEFT's {@code use_rslora}). */
    public LoraConfig rslora(boolean value) {
        return copy(copy -> copy.useRslora = value);
    }

    /** Leaves out the layers these names select, with the list rules of the targets (PEFT's {@code exclude_modules}). */
    public LoraConfig exclude(String... modules) {
        return withSelection(selection.withExclude(List.of(modules), null));
    }

    /** Leaves out the layers whose whole path {@code regex} matches (PEFT's {@code exclude_modules} as a string). */
    public LoraConfig excludeRegex(String regex) {
        return withSelection(selection.withExclude(List.of(), Objects.requireNonNull(regex, "regex")));
    }

    /**
     * Only the targets inside these layers of a layer list: a path qualifies by the index after its first
     * {@code <list>.<index>.} segment (PEFT's {@code layers_to_transform}); not with a regular expression.
     */
    public LoraConfig layersToTransform(int... indices) {
        if (selection.targetRegex() != null) {
            throw new IllegalArgumentException("layersToTransform applies to a list of target names, not to the regular "
                    + "expression or all-linear " + selection.describeTargets() + " (as in PEFT); put the layer numbers in the expression");
        }
        return withSelection(selection.withLayers(Arrays.stream(indices).boxed().toList(), selection.layersPattern()));
    }

    /** The names of the layer lists whose indices {@link #layersToTransform} counts ({@code layers}, {@code h}; PEFT's {@code layers_pattern}). */
    public LoraConfig layersPattern(String... names) {
        return withSelection(selection.withLayers(selection.layersToTransform(), List.of(names)));
    }

    /** Ranks other than {@link #rank} for the layers a key selects (name, suffix or regex; PEFT's {@code rank_pattern}). */
    public LoraConfig rankPattern(Map<String, Integer> pattern) {
        return copy(copy -> copy.rankPattern = Map.copyOf(pattern));
    }

    /** Alphas other than {@link #alpha} for the layers a key selects (PEFT's {@code alpha_pattern}). */
    public LoraConfig alphaPattern(Map<String, Double> pattern) {
        return copy(copy -> copy.alphaPattern = Map.copyOf(pattern));
    }

    /**
     * How the weight of a selected layer without {@code @Weight} is laid out: {@code [in, out]} (ND4J's
     * {@code x · W}, the default) or {@code [out, in]} (PyTorch's). A {@code @Weight} field's own layout wins.
     */
    public LoraConfig weightLayout(WeightLayout layout) {
        return copy(copy -> copy.weightLayout = Objects.requireNonNull(layout));
    }

    /**
     * DoRA on every selected layer (PEFT's {@code use_dora}): a trainable magnitude per output feature
     * times the LoRA-adapted direction, {@code m · (W + s·ΔW) / ‖W + s·ΔW‖}.
     */
    public LoraConfig dora(boolean value) {
        return copy(copy -> copy.useDora = value);
    }

    /** How A and B start (PEFT's {@code init_lora_weights}); PiSSA and OLoRA also rewrite the base weight to its residual. */
    public LoraConfig init(LoraInit value) {
        return copy(copy -> copy.initLoraWeights = Objects.requireNonNull(value, "init"));
    }

    private LoraConfig withSelection(ModuleSelection value) {
        return copy(copy -> copy.selection = value);
    }

    private LoraConfig copy(java.util.function.Consumer<LoraConfig> change) {
        LoraConfig copy = new LoraConfig(r, loraAlpha, loraDropout, useRslora, selection, fanInFanOut, rankPattern, alphaPattern,
                weightLayout);
        copy.useDora = useDora;
        copy.initLoraWeights = initLoraWeights;
        change.accept(copy);
        copy.validate();
        return copy;
    }

    @Override
    public Class<? extends Annotation> annotation() {
        return LoRA.class;
    }

    /** Which layers it selects. */
    public ModuleSelection selection() {
        return selection;
    }

    WeightLayout layoutOfUnannotatedWeights() {
        return weightLayout;
    }

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
        LoraConfig read = new LoraConfig(r, alpha, dropout, saved.bool("use_rslora", false), ModuleSelection.read(saved, modulesToSave),
                saved.bool("fan_in_fan_out", false), ranks, alphas, WeightLayout.IN_OUT);
        read.useDora = saved.bool("use_dora", false);
        read.initLoraWeights = readInit(saved);
        return read;
    }

    /**
     * {@code init_lora_weights}: PEFT re-runs a PiSSA or OLoRA initialisation when it loads such an adapter
     * (the base weight becomes its residual before the saved A and B are written), so peft4j does too.
     */
    private static LoraInit readInit(ConfigReader saved) {
        JsonNode value = saved.config().get("init_lora_weights");
        if (value == null || value.isNull() || value.isBoolean() && value.booleanValue()) {
            return LoraInit.DEFAULT;
        }
        for (LoraInit init : LoraInit.values()) {
            if (value.isTextual() && value.textValue().equals(init.peftName())) {
                return init;
            }
        }
        throw saved.configError("has init_lora_weights = " + value + ", which peft4j does not implement; it knows true, "
                + "\"gaussian\", \"pissa\" and \"olora\" (a \"pissa_niter_n\" adapter's randomised SVD cannot be reproduced exactly)");
    }

    /** A config as {@link LoraAdapter} saves it: targets by list, no exclusions, per-layer ranks and alphas in the patterns. */
    static LoraConfig saved(int r, double alpha, double dropout, boolean rslora, boolean dora, LoraInit init, List<String> targets,
                            boolean fanInFanOut, Map<String, Integer> rankPattern, Map<String, Double> alphaPattern) {
        LoraConfig saved = new LoraConfig(r, alpha, dropout, rslora, ModuleSelection.of(targets), fanInFanOut, rankPattern, alphaPattern,
                WeightLayout.IN_OUT);
        saved.useDora = dora;
        saved.initLoraWeights = init;
        return saved;
    }

    /** Whether the config selects the module {@code name} (modules saved whole are never targets, as in PEFT). */
    boolean targets(String name) {
        return selection.selects(name);
    }

    boolean useRslora() {
        return useRslora;
    }

    boolean useDora() {
        return useDora;
    }

    int rankOf(String name) {
        return matching(rankPattern, name).orElse(r);
    }

    double alphaOf(String name) {
        return matching(alphaPattern, name).orElse(loraAlpha);
    }

    LoraSettings settingsOf(String name) {
        return new LoraSettings(rankOf(name), alphaOf(name), loraDropout, useRslora, useDora, initLoraWeights);
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
        selection.write(root);
        root.put("bias", "none");
        root.put("fan_in_fan_out", fanInFanOut);
        if (initLoraWeights == LoraInit.DEFAULT) {
            root.put("init_lora_weights", true);
        } else {
            root.put("init_lora_weights", initLoraWeights.peftName());
        }
        root.put("use_dora", useDora);
        ObjectNode ranks = root.putObject("rank_pattern");
        rankPattern.forEach(ranks::put);
        ObjectNode alphas = root.putObject("alpha_pattern");
        alphaPattern.forEach(alphas::put);
        return root;
    }

    @Override
    public String toString() {
        return "LoraConfig[target_modules=" + selection.describeTargets() + ", r=" + r + ", lora_alpha=" + loraAlpha
                + ", lora_dropout=" + loraDropout + ", use_rslora=" + useRslora + ", use_dora=" + useDora
                + ", init_lora_weights=" + initLoraWeights.peftName() + "]";
    }
}
