package io.peft4j.runtime.prompt;

import io.peft4j.annotations.PromptInit;
import io.peft4j.annotations.PromptTuning;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.internal.WeightAccessors;
import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.MethodAdapter;
import io.peft4j.runtime.method.ModelNode;
import io.peft4j.runtime.method.PeftMethod;
import io.peft4j.runtime.spi.WeightAccessor;
import java.lang.annotation.Annotation;
import java.util.LinkedHashMap;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;

/**
 * Prompt tuning (Lester et al., 2021): {@code n} trainable virtual tokens {@code [n, d]} in front of an
 * embedding layer's output. Declared with {@code @PromptTuning}; {@code peft_type PROMPT_TUNING}.
 */
public final class PromptTuningMethod implements PeftMethod {

    @Override
    public String name() {
        return "prompt_tuning";
    }

    @Override
    public Class<? extends Annotation> annotation() {
        return PromptTuning.class;
    }

    @Override
    public String peftType() {
        return "PROMPT_TUNING";
    }

    @Override
    public MethodAdapter attach(AttachContext context) {
        Map<String, PromptRows> prompts = new LinkedHashMap<>();
        try {
            for (ModelNode node : context.nodes()) {
                PromptTuning annotation = context.annotationOf(node, PromptTuning.class);
                if (annotation != null) {
                    int n = context.virtualTokens() != null ? context.virtualTokens() : annotation.virtualTokens();
                    prompts.put(node.path(), rows(context, node, n, annotation.init(), annotation.text()));
                }
            }
        } catch (RuntimeException e) {
            prompts.values().forEach(rows -> rows.site().remove(context.adapterName()));
            throw e;
        }
        return prompts.isEmpty() ? null : new PromptTuningAdapter(this, context.adapterName(), prompts);
    }

    private static PromptRows rows(AttachContext context, ModelNode node, int virtualTokens, PromptInit init, String text) {
        WeightAccessor<Object> accessor = WeightAccessors.forLayer(node.value().getClass(), node.path(), "@PromptTuning");
        Object table = accessor.weight(node.value());
        if (!(table instanceof SDVariable vocabulary) || vocabulary.getArr() == null || vocabulary.getArr().rank() != 2) {
            throw new PeftException("@PromptTuning on layer '" + node.path() + "': its @Weight must be the vocabulary table, an "
                    + "SDVariable [vocabulary, d]");
        }
        PromptSite site = PromptSite.on(node.value(), node.path(), context.forward(), vocabulary.getArr().size(1));
        try {
            PromptRows rows = new PromptRows(site, context, vocabulary.getSameDiff(), vocabulary.getArr(), virtualTokens, init, text,
                    context.promptTokenizer());
            site.add(context.adapterName(), rows);
            return rows;
        } catch (RuntimeException e) {
            site.remove(context.adapterName());
            throw e;
        }
    }

    @Override
    public MethodAdapter restore(AttachContext context, SavedAdapter saved) {
        int n = saved.reader().positiveInt("num_virtual_tokens");
        String layer = saved.reader().text("peft4j_layer", null);
        ModelNode target = null;
        for (ModelNode node : context.nodes()) {
            boolean named = layer != null && saved.keys().module(node.path()).equals(layer);
            boolean annotated = layer == null && context.annotationOf(node, PromptTuning.class) != null;
            if (named || annotated) {
                if (target != null) {
                    throw new CheckpointException(saved.configFile(), "has no peft4j_layer, and the model has several @PromptTuning "
                            + "layers ('" + target.path() + "', '" + node.path() + "'): name the embedding with peft4j_layer");
                }
                target = node;
            }
        }
        if (target == null) {
            throw new CheckpointException(saved.configFile(), layer != null ? "names the embedding layer '" + layer
                    + "', which the model does not have" : "has no peft4j_layer, and no layer of the model carries @PromptTuning");
        }
        PromptRows rows = rows(context, target, n, PromptInit.RANDOM, "");
        long width = saved.reader().positiveInt("token_dim", (int) rows.site().width());
        if (width != rows.site().width()) {
            rows.site().remove(context.adapterName());
            throw new CheckpointException(saved.configFile(), "says token_dim = " + width + ", but the embedding '" + target.path()
                    + "' has d = " + rows.site().width());
        }
        return new PromptTuningAdapter(this, context.adapterName(), Map.of(target.path(), rows));
    }
}
