package io.peft4j.runtime.prefix;

import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.method.MethodState;
import io.peft4j.runtime.method.NamedMethodAdapter;
import io.peft4j.runtime.method.PeftMethod;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The prefix-tuning part of one named adapter. Saved as Hugging Face PEFT saves prefix tuning: one
 * tensor {@code prompt_embeddings [n, layers·2·d]} (with projection, the resulting prefixes, which
 * replace the MLP when loaded, as PEFT does in inference mode), {@code peft_type PREFIX_TUNING},
 * {@code num_virtual_tokens}, {@code token_dim}, {@code num_layers}, plus {@code peft4j_layers}, the
 * attention layers in order.
 */
public final class PrefixTuningAdapter extends NamedMethodAdapter {

    static final String PROMPT_EMBEDDINGS = "prompt_embeddings";

    private final PrefixTuner tuner;

    PrefixTuningAdapter(PeftMethod method, String adapterName, PrefixTuner tuner) {
        super(method, adapterName);
        this.tuner = tuner;
    }

    /** The prefix-tuning part of adapter {@code name} of {@code peft}. */
    public static PrefixTuningAdapter of(PeftModel peft, String name) {
        return peft.adapter(name).requirePart(PrefixTuningAdapter.class, "prefix tuning");
    }

    @Override
    public List<String> layers() {
        return tuner.layers().stream().map(PrefixTuner.Attention::path).toList();
    }

    /** The current prefixes of all layers as PEFT's {@code prompt_embeddings [n, Σ(d_k + d_v)]} (the projection evaluated). */
    public INDArray prefixes() {
        return tuner.prefixes();
    }

    /** n. */
    public int virtualTokens() {
        return tuner.virtualTokens();
    }

    /** Whether the prefixes come from the projection MLP (training) rather than being fixed values. */
    public boolean projection() {
        return tuner.projection() && tuner.variableNames().stream().anyMatch(name -> name.startsWith("prefix_encoder."));
    }

    @Override
    public List<String> variableNames() {
        return tuner.variableNames();
    }

    @Override
    public long parameterCount() {
        return tuner.parameterCount();
    }

    @Override
    public List<String> unwiredLayers() {
        return tuner.graphUses() == 0 ? layers() : List.of();
    }

    @Override
    public void setActive(boolean active) {
        tuner.setActive(active);
    }

    @Override
    public void setTraining(boolean training) {
        // no training-only behaviour
    }

    @Override
    public void remove() {
        tuner.setRemoved();
        tuner.unregister();
    }

    @Override
    public void detach() {
        tuner.layers().forEach(layer -> {
            layer.keys().unregister();
            layer.values().unregister();
        });
    }

    @Override
    public MethodState state(CheckpointKeys keys) {
        ObjectNode config = JsonNodeFactory.instance.objectNode();
        config.put("num_virtual_tokens", tuner.virtualTokens());
        config.put("token_dim", tuner.layers().get(0).keys().width());
        config.put("num_layers", tuner.layers().size());
        config.put("num_transformer_submodules", 1);
        config.put("prefix_projection", tuner.projection());
        tuner.layers().forEach(layer -> config.withArray("peft4j_layers").add(keys.module(layer.path())));
        return new MethodState(Map.of(PROMPT_EMBEDDINGS, tuner.prefixes()), config);
    }

    @Override
    public Runnable prepareLoad(SavedAdapter saved) {
        INDArray stored = saved.tensors().requireExactly(List.of(PROMPT_EMBEDDINGS),
                "a prefix-tuning adapter holds exactly the tensor '" + PROMPT_EMBEDDINGS + "'").get(PROMPT_EMBEDDINGS);
        saved.tensors().requireShape(PROMPT_EMBEDDINGS, stored, new long[] {tuner.virtualTokens(), tuner.totalWidth()},
                "the prefixes of " + tuner.layers().size() + " attention layers");
        return () -> tuner.useFixedPrefixes(stored);
    }
}
