package io.peft4j.runtime.prompt;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.annotations.PromptInit;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.method.MethodState;
import io.peft4j.runtime.method.NamedMethodAdapter;
import io.peft4j.runtime.method.PeftMethod;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The prompt-tuning part of one named adapter: virtual tokens {@code [n, d]} in front of an embedding
 * layer's output. Saved as Hugging Face PEFT saves prompt tuning: one tensor {@code prompt_embeddings [n, d]},
 * {@code peft_type PROMPT_TUNING}, {@code num_virtual_tokens} and {@code token_dim}, plus
 * {@code peft4j_layer}, the embedding layer it belongs to.
 */
public final class PromptTuningAdapter extends NamedMethodAdapter {

    static final String PROMPT_EMBEDDINGS = "prompt_embeddings";

    private final Map<String, PromptRows> prompts;

    PromptTuningAdapter(PeftMethod method, String adapterName, Map<String, PromptRows> prompts) {
        super(method, adapterName);
        this.prompts = new LinkedHashMap<>(prompts);
    }

    /** The prompt-tuning part of adapter {@code name} of {@code peft}. */
    public static PromptTuningAdapter of(PeftModel peft, String name) {
        return peft.adapter(name).requirePart(PromptTuningAdapter.class, "prompt tuning");
    }

    @Override
    public List<String> layers() {
        return List.copyOf(prompts.keySet());
    }

    /** The prompt variable {@code [n, d]} of the embedding at {@code path} ({@code null} with no virtual tokens). */
    public SDVariable prompt(String path) {
        PromptRows rows = prompts.get(path);
        if (rows == null) {
            throw new PeftException("Adapter '" + adapterName() + "' has no prompt on '" + path + "'; it has " + prompts.keySet());
        }
        return rows.prompt();
    }

    @Override
    public List<String> variableNames() {
        return prompts.values().stream().filter(rows -> rows.prompt() != null).map(rows -> rows.prompt().name()).toList();
    }

    @Override
    public long parameterCount() {
        return prompts.values().stream().mapToLong(rows -> rows.count() * rows.site().width()).sum();
    }

    @Override
    public List<String> unwiredLayers() {
        return prompts.values().stream().filter(rows -> rows.graphUses() == 0).map(rows -> rows.site().path()).toList();
    }

    @Override
    public void setActive(boolean active) {
        prompts.values().forEach(rows -> rows.setActive(active));
    }

    @Override
    public void setTraining(boolean training) {
        // no training-only behaviour
    }

    @Override
    public void remove() {
        prompts.values().forEach(rows -> {
            rows.setRemoved();
            rows.site().remove(adapterName());
        });
    }

    @Override
    public void detach() {
        prompts.values().forEach(rows -> rows.site().unregister());
    }

    private PromptRows single(Path where) {
        if (prompts.size() != 1) {
            throw new CheckpointException(where, "adapter '" + adapterName() + "' has prompts on " + prompts.keySet()
                    + ", and a PEFT prompt-tuning adapter holds one; annotate one embedding layer with @PromptTuning");
        }
        return prompts.values().iterator().next();
    }

    @Override
    public MethodState state(CheckpointKeys keys) {
        PromptRows rows = single(Path.of(adapterName()));
        ObjectNode config = JsonNodeFactory.instance.objectNode();
        config.put("num_virtual_tokens", rows.virtualTokens());
        config.put("token_dim", rows.site().width());
        config.put("num_transformer_submodules", 1);
        config.put("prompt_tuning_init", rows.init() == PromptInit.VOCAB_SAMPLE ? "SAMPLE_VOCAB" : rows.init().name());
        config.put("peft4j_layer", keys.module(rows.site().path()));
        INDArray values = rows.prompt() == null ? org.nd4j.linalg.factory.Nd4j.create(org.nd4j.linalg.api.buffer.DataType.FLOAT, 0,
                rows.site().width()) : rows.prompt().getArr();
        return new MethodState(Map.of(PROMPT_EMBEDDINGS, values), config);
    }

    @Override
    public Runnable prepareLoad(SavedAdapter saved) {
        PromptRows rows = single(saved.weightsFile());
        INDArray stored = saved.tensors().requireExactly(List.of(PROMPT_EMBEDDINGS),
                "a prompt-tuning adapter holds exactly the tensor '" + PROMPT_EMBEDDINGS + "'").get(PROMPT_EMBEDDINGS);
        long[] shape = {rows.virtualTokens(), rows.site().width()};
        saved.tensors().requireShape(PROMPT_EMBEDDINGS, stored, shape, "the prompt of layer '" + rows.site().path() + "'");
        return () -> {
            if (rows.prompt() != null) {
                rows.prompt().getArr().assign(stored.castTo(rows.prompt().dataType()));
            }
        };
    }
}
