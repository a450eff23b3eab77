package io.peft4j.runtime.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.annotations.PromptInit;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.internal.BottleneckAdapter;
import io.peft4j.runtime.internal.PrefixTuner;
import io.peft4j.runtime.internal.PromptEmbedding;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The tensors and configs of the methods other than LoRA, in the layouts their ecosystems use:
 * prompt tuning as Hugging Face PEFT ({@code prompt_embeddings [n, d]}, {@code peft_type PROMPT_TUNING}),
 * prefix tuning as PEFT ({@code prompt_embeddings [n, layers·2·d]}, {@code peft_type PREFIX_TUNING}),
 * bottleneck adapters with AdapterHub's key names
 * ({@code <layer>.adapters.<name>.adapter_down.0.weight [b, d]}, {@code .adapter_down.0.bias},
 * {@code .adapter_up.weight [d, b]}, {@code .adapter_up.bias}; PEFT has no bottleneck adapters).
 */
final class MethodCheckpoints {

    static final String PROMPT_EMBEDDINGS = "prompt_embeddings";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final String PREFIX = "base_model.model.";

    private MethodCheckpoints() {
    }

    /** What one method writes: its tensors by key and its config. */
    record Contents(Map<String, INDArray> tensors, byte[] config) {
    }

    static Contents prompt(PeftModel model, CheckpointOptions options) {
        PromptEmbedding prompt = single(model.promptEmbeddings().values(), "@PromptTuning layer");
        ObjectNode config = base("PROMPT_TUNING", options);
        config.put("num_virtual_tokens", prompt.virtualTokens());
        config.put("token_dim", prompt.width());
        config.put("num_transformer_submodules", 1);
        config.put("prompt_tuning_init", prompt.init() == PromptInit.VOCAB_SAMPLE ? "SAMPLE_VOCAB" : prompt.init().name());
        config.put("peft4j_layer", prompt.path());
        return new Contents(Map.of(PROMPT_EMBEDDINGS, prompt.prompt().getArr()), bytes(config));
    }

    static Contents prefix(PeftModel model, CheckpointOptions options) {
        PrefixTuner prefixes = model.prefixTuning();
        ObjectNode config = base("PREFIX_TUNING", options);
        config.put("num_virtual_tokens", prefixes.virtualTokens());
        config.put("token_dim", prefixes.sites().get(0).keyWidth());
        config.put("num_layers", prefixes.sites().size());
        config.put("num_transformer_submodules", 1);
        config.put("prefix_projection", prefixes.projection());
        prefixes.sites().forEach(site -> config.withArray("peft4j_layers").add(site.path()));
        return new Contents(Map.of(PROMPT_EMBEDDINGS, prefixes.prefixes()), bytes(config));
    }

    static Contents bottleneck(PeftModel model, CheckpointOptions options) {
        ObjectNode config = base("BOTTLENECK", options);
        ObjectNode layers = config.putObject("layers");
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        model.bottleneckAdapters().forEach((path, adapter) -> {
            List<INDArray> parameters = adapter.parameters();
            if (parameters.isEmpty()) {
                throw new CheckpointException(Path.of(options.adapterName()), "the adapter of layer '" + path
                        + "' has no weights yet: build the graph (call the model's forward) before saving");
            }
            String key = PREFIX + options.layerNames().apply(path) + ".adapters." + options.adapterName();
            tensors.put(key + ".adapter_down.0.weight", parameters.get(0).transpose());
            tensors.put(key + ".adapter_down.0.bias", parameters.get(1));
            tensors.put(key + ".adapter_up.weight", parameters.get(2).transpose());
            tensors.put(key + ".adapter_up.bias", parameters.get(3));
            ObjectNode layer = layers.putObject(path);
            layer.put("architecture", "bottleneck");
            layer.put("hidden_size", adapter.hidden());
            layer.put("adapter_size", parameters.get(0).size(1));
            layer.put("reduction_factor", adapter.settings().reductionFactor());
            layer.put("non_linearity", adapter.settings().activation());
            layer.put("preset", adapter.settings().preset());
        });
        return new Contents(tensors, bytes(config));
    }

    /**
     * Checks {@code tensors} (read from {@code file}) against {@code model}'s method {@code peftType} and
     * returns the action that writes them; nothing is written before it runs.
     */
    static Runnable prepareLoad(PeftModel model, String peftType, Map<String, INDArray> tensors, Path file, CheckpointOptions options) {
        switch (peftType) {
            case "PROMPT_TUNING": {
                PromptEmbedding prompt = single(model.promptEmbeddings().values(), "@PromptTuning layer");
                INDArray stored = only(tensors, PROMPT_EMBEDDINGS, file);
                requireShape(file, PROMPT_EMBEDDINGS, stored, prompt.prompt().getArr().shape(), "prompt of layer '" + prompt.path() + "'");
                return () -> prompt.prompt().getArr().assign(stored.castTo(prompt.prompt().dataType()));
            }
            case "PREFIX_TUNING": {
                PrefixTuner prefixes = model.prefixTuning();
                INDArray stored = only(tensors, PROMPT_EMBEDDINGS, file);
                requireShape(file, PROMPT_EMBEDDINGS, stored, new long[] {prefixes.virtualTokens(), prefixes.totalWidth()},
                        "prefixes of " + prefixes.sites().size() + " attention layers");
                return () -> prefixes.useFixedPrefixes(stored);
            }
            case "BOTTLENECK":
                return prepareBottleneck(model, tensors, file, options);
            default:
                throw new CheckpointException(file, "peft_type " + peftType + " is not one peft4j loads");
        }
    }

    private static Runnable prepareBottleneck(PeftModel model, Map<String, INDArray> tensors, Path file, CheckpointOptions options) {
        Map<String, String> expected = new LinkedHashMap<>();
        model.bottleneckAdapters().keySet().forEach(path -> {
            String key = PREFIX + options.layerNames().apply(path) + ".adapters." + options.adapterName();
            for (String part : List.of(".adapter_down.0.weight", ".adapter_down.0.bias", ".adapter_up.weight", ".adapter_up.bias")) {
                expected.put(key + part, path);
            }
        });
        List<String> missing = expected.keySet().stream().filter(key -> !tensors.containsKey(key)).toList();
        List<String> unexpected = tensors.keySet().stream().filter(key -> !expected.containsKey(key)).toList();
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            throw new CheckpointException(file, (missing.isEmpty() ? "" : "missing keys " + missing)
                    + (missing.isEmpty() || unexpected.isEmpty() ? "" : "; ") + (unexpected.isEmpty() ? "" : "unexpected keys " + unexpected)
                    + ": the adapter was saved for a model with other @Adapter layers (or another adapter name)");
        }
        Map<BottleneckAdapter, INDArray[]> values = new LinkedHashMap<>();
        model.bottleneckAdapters().forEach((path, adapter) -> {
            String key = PREFIX + options.layerNames().apply(path) + ".adapters." + options.adapterName();
            INDArray down = tensors.get(key + ".adapter_down.0.weight");
            if (down.rank() != 2) {
                throw new CheckpointException(file, "tensor '" + key + ".adapter_down.0.weight' must be [b, d], got "
                        + Arrays.toString(down.shape()));
            }
            long bottleneck = down.size(0);
            long hidden = down.size(1);
            if (adapter.hidden() != 0 && adapter.hidden() != hidden) {
                throw new CheckpointException(file, "the adapter of '" + path + "' was saved for width " + hidden
                        + ", but the layer's output has width " + adapter.hidden());
            }
            if (adapter.settings().bottleneck(hidden) != bottleneck) {
                throw new CheckpointException(file, "the adapter of '" + path + "' has bottleneck " + bottleneck
                        + ", but the model's @Adapter gives " + adapter.settings().bottleneck(hidden));
            }
            requireShape(file, key + ".adapter_down.0.bias", tensors.get(key + ".adapter_down.0.bias"), new long[] {bottleneck}, path);
            requireShape(file, key + ".adapter_up.weight", tensors.get(key + ".adapter_up.weight"), new long[] {hidden, bottleneck}, path);
            requireShape(file, key + ".adapter_up.bias", tensors.get(key + ".adapter_up.bias"), new long[] {hidden}, path);
            values.put(adapter, new INDArray[] {down.transpose(), tensors.get(key + ".adapter_down.0.bias"),
                    tensors.get(key + ".adapter_up.weight").transpose(), tensors.get(key + ".adapter_up.bias")});
        });
        return () -> values.forEach((adapter, stored) -> {
            adapter.ensureCreated(model.sameDiff(), stored[0].size(0), model.sameDiff().variables().stream()
                    .filter(variable -> variable.dataType().isFPType()).findFirst().orElseThrow().dataType());
            List<INDArray> parameters = adapter.parameters();
            for (int i = 0; i < stored.length; i++) {
                parameters.get(i).assign(stored[i].castTo(parameters.get(i).dataType()));
            }
        });
    }

    private static INDArray only(Map<String, INDArray> tensors, String key, Path file) {
        if (!tensors.keySet().equals(java.util.Set.of(key))) {
            throw new CheckpointException(file, "expected exactly the key '" + key + "', found " + tensors.keySet());
        }
        return tensors.get(key);
    }

    private static void requireShape(Path file, String key, INDArray stored, long[] shape, String what) {
        if (!Arrays.equals(stored.shape(), shape)) {
            throw new CheckpointException(file, "tensor '" + key + "' has shape " + Arrays.toString(stored.shape()) + ", but the "
                    + what + " needs " + Arrays.toString(shape));
        }
    }

    private static <T> T single(java.util.Collection<T> items, String what) {
        if (items.size() != 1) {
            throw new IllegalStateException("expected one " + what + ", found " + items.size());
        }
        return items.iterator().next();
    }

    private static ObjectNode base(String peftType, CheckpointOptions options) {
        ObjectNode config = JSON.createObjectNode();
        config.put("peft_type", peftType);
        config.put("task_type", options.taskType());
        config.put("base_model_name_or_path", options.baseModel());
        config.put("inference_mode", true);
        return config;
    }

    private static byte[] bytes(ObjectNode config) {
        try {
            return JSON.writeValueAsBytes(config);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a tree of strings and numbers always serialises", e);
        }
    }

    /** The {@code peft_type} of a config file's bytes. */
    static String peftType(Path file, byte[] config) {
        try {
            JsonNode root = JSON.readTree(new String(config, StandardCharsets.UTF_8));
            if (root == null || !root.isObject() || !root.path("peft_type").isTextual()) {
                throw new CheckpointException(file, "malformed adapter config: no peft_type");
            }
            return root.get("peft_type").asText();
        } catch (JsonProcessingException e) {
            throw new CheckpointException(file, "malformed JSON: " + e.getOriginalMessage());
        }
    }
}
