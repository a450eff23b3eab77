package io.peft4j.runtime;

import io.peft4j.runtime.method.MethodConfig;
import java.lang.annotation.Annotation;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Function;

/**
 * How a new adapter is created from the model's annotations ({@link PeftModel#addAdapter(String, AdapterOptions)},
 * and the first adapter through {@link PeftModel.Builder}). Immutable: each {@code with…} returns a copy.
 *
 * @param methods         the annotations whose methods the adapter uses ({@code LoRA.class}, ...); empty for every annotated method
 * @param seed            the seed of every initialisation (42 by default)
 * @param alsoTrain       field paths trained and saved with the adapter, like PEFT's {@code modules_to_save}
 * @param virtualTokens   overrides the annotations' {@code virtualTokens} for prompt and prefix tuning, or {@code null}
 * @param promptTokenizer text to token ids, for {@code @PromptTuning(init = TEXT)}, or {@code null}
 * @param taskType        PEFT's {@code task_type} written when the adapter is saved ({@code SEQ_CLS}, {@code CAUSAL_LM}, ...), or {@code null}
 * @param baseModel       {@code base_model_name_or_path} written when the adapter is saved, or {@code null}
 * @param configs         methods' settings given in code, selecting layers by name ({@code LoraConfig}); where a config
 *                        and an annotation both name a layer, the config wins
 */
public record AdapterOptions(List<Class<? extends Annotation>> methods, long seed, List<String> alsoTrain, Integer virtualTokens,
                             Function<String, int[]> promptTokenizer, String taskType, String baseModel, List<MethodConfig> configs) {

    public AdapterOptions {
        methods = List.copyOf(methods);
        alsoTrain = List.copyOf(alsoTrain);
        configs = List.copyOf(configs);
        if (configs.stream().map(MethodConfig::annotation).distinct().count() < configs.size()) {
            throw new IllegalArgumentException("give at most one config per PEFT method, got " + configs);
        }
        if (virtualTokens != null && virtualTokens < 0) {
            throw new IllegalArgumentException("virtual tokens must not be negative, got " + virtualTokens);
        }
    }

    /** Every annotated method, seed 42, nothing else trained. */
    public static AdapterOptions defaults() {
        return new AdapterOptions(List.of(), 42, List.of(), null, null, null, null, List.of());
    }

    /** Only these annotations' methods (one model annotated for several methods can be adapted by each in turn). */
    @SafeVarargs
    public final AdapterOptions withMethods(Class<? extends Annotation>... selected) {
        if (selected.length == 0) {
            throw new IllegalArgumentException("choose at least one PEFT method, e.g. LoRA.class");
        }
        return new AdapterOptions(List.of(selected), seed, alsoTrain, virtualTokens, promptTokenizer, taskType, baseModel, configs);
    }

    /**
     * Adds a method's settings given in code: the layers it selects by name are adapted whether or not
     * they are annotated, with the config's settings; other annotated layers keep their annotations.
     * At most one config per method.
     */
    public AdapterOptions withConfig(MethodConfig config) {
        List<MethodConfig> all = new ArrayList<>(configs);
        all.add(java.util.Objects.requireNonNull(config, "config"));
        return new AdapterOptions(methods, seed, alsoTrain, virtualTokens, promptTokenizer, taskType, baseModel, all);
    }

    public AdapterOptions withSeed(long value) {
        return new AdapterOptions(methods, value, alsoTrain, virtualTokens, promptTokenizer, taskType, baseModel, configs);
    }

    /** Adds field paths whose variables train and save with the adapter (typically a new classifier head). */
    public AdapterOptions withAlsoTrain(String... paths) {
        List<String> all = new ArrayList<>(alsoTrain);
        all.addAll(List.of(paths));
        return new AdapterOptions(methods, seed, all, virtualTokens, promptTokenizer, taskType, baseModel, configs);
    }

    public AdapterOptions withVirtualTokens(int count) {
        return new AdapterOptions(methods, seed, alsoTrain, count, promptTokenizer, taskType, baseModel, configs);
    }

    public AdapterOptions withPromptTokenizer(Function<String, int[]> tokenizer) {
        return new AdapterOptions(methods, seed, alsoTrain, virtualTokens, tokenizer, taskType, baseModel, configs);
    }

    public AdapterOptions withTaskType(String type) {
        return new AdapterOptions(methods, seed, alsoTrain, virtualTokens, promptTokenizer, type, baseModel, configs);
    }

    public AdapterOptions withBaseModel(String name) {
        return new AdapterOptions(methods, seed, alsoTrain, virtualTokens, promptTokenizer, taskType, name, configs);
    }
}
