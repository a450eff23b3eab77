package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
import java.util.ArrayList;
import java.util.List;

/**
 * The single entry point from instrumented layer code into the runtime.
 *
 * <p>The peft4j agent inlines a call to {@link #afterForward} at every exit of a layer's forward
 * method. It is not meant for user code; instances that no {@code PeftModel} adapted pass through
 * untouched. A layer may carry several extensions of different kinds (a LoRA branch inside it and a
 * bottleneck adapter after it); they apply in the order they were registered.
 */
public final class ForwardDispatcher {

    private static final IdentityWeakMap<Object, List<ForwardExtension>> EXTENSIONS = new IdentityWeakMap<>();

    private ForwardDispatcher() {
    }

    /**
     * Called by the agent's advice after {@code layer}'s forward method returned {@code output}
     * for {@code input}; returns what the forward method returns to its caller.
     */
    public static Object afterForward(Object layer, Object input, Object output) {
        List<ForwardExtension> extensions = EXTENSIONS.get(layer);
        if (extensions == null) {
            return output;
        }
        Object result = output;
        for (ForwardExtension extension : extensions) {
            result = extension.afterForward(input, result);
        }
        return result;
    }

    static synchronized void register(Object layer, ForwardExtension extension, String path) {
        requireNone(layer, extension.getClass(), path);
        List<ForwardExtension> extensions = new ArrayList<>();
        List<ForwardExtension> existing = EXTENSIONS.get(layer);
        if (existing != null) {
            extensions.addAll(existing);
        }
        extensions.add(extension);
        EXTENSIONS.put(layer, List.copyOf(extensions));
    }

    /** Fails if {@code layer} already carries an extension of {@code kind}. */
    static void requireNone(Object layer, Class<? extends ForwardExtension> kind, String path) {
        List<ForwardExtension> existing = EXTENSIONS.get(layer);
        if (existing != null && existing.stream().anyMatch(kind::isInstance)) {
            throw new PeftException("Layer '" + path + "' (" + layer.getClass().getName() + ") already has PEFT attached ("
                    + kind.getSimpleName() + "): call detach() on the first PeftModel before attaching another");
        }
    }

    static synchronized void unregister(Object layer, ForwardExtension extension) {
        List<ForwardExtension> existing = EXTENSIONS.get(layer);
        if (existing == null) {
            return;
        }
        List<ForwardExtension> remaining = existing.stream().filter(other -> other != extension).toList();
        if (remaining.isEmpty()) {
            EXTENSIONS.remove(layer);
        } else {
            EXTENSIONS.put(layer, remaining);
        }
    }
}
