package io.peft4j.runtime.prompt;

import io.peft4j.runtime.internal.PrependSite;
import io.peft4j.runtime.method.ForwardContext;

/** The prompts of one {@code PeftModel}'s adapters in front of one embedding layer's output. */
final class PromptSite extends PrependSite {

    private PromptSite(Object layer, String path, ForwardContext context, long width) {
        super(layer, path, "prompt tuning", context, width);
    }

    static PromptSite on(Object layer, String path, ForwardContext context, long width) {
        return on(layer, PromptSite.class, context, () -> new PromptSite(layer, path, context, width), path);
    }
}
