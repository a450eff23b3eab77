package io.peft4j.runtime.prefix;

import io.peft4j.runtime.internal.PrependSite;
import io.peft4j.runtime.method.ForwardContext;

/** The prefixes of one {@code PeftModel}'s adapters in front of one key or value projection's output. */
final class PrefixSite extends PrependSite {

    private PrefixSite(Object layer, String path, ForwardContext context, long width) {
        super(layer, path, "prefix tuning", context, width);
    }

    static PrefixSite on(Object layer, String path, ForwardContext context, long width) {
        return on(layer, PrefixSite.class, context, () -> new PrefixSite(layer, path, context, width), path);
    }
}
