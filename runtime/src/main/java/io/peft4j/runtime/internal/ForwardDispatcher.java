package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;

/**
 * The single entry point from instrumented layer code into the runtime.
 *
 * <p>The peft4j agent inlines a call to {@link #afterForward} at every exit of an annotated layer's
 * forward method. It is not meant for user code; layers of instances that no {@code PeftModel}
 * adapted pass through untouched.
 */
public final class ForwardDispatcher {

    private static final IdentityWeakMap<Object, ForwardExtension> EXTENSIONS = new IdentityWeakMap<>();

    private ForwardDispatcher() {
    }

    /**
     * Called by the agent's advice after {@code layer}'s forward method returned {@code output}
     * for {@code input}; returns what the forward method returns to its caller.
     */
    public static Object afterForward(Object layer, Object input, Object output) {
        ForwardExtension extension = EXTENSIONS.get(layer);
        return extension == null ? output : extension.afterForward(input, output);
    }

    static void register(Object layer, ForwardExtension extension, String path) {
        requireUnadapted(layer, path);
        EXTENSIONS.put(layer, extension);
    }

    static void requireUnadapted(Object layer, String path) {
        if (EXTENSIONS.get(layer) != null) {
            throw new PeftException("Layer '" + path + "' (" + layer.getClass().getName()
                    + ") already has PEFT attached: call detach() on the first PeftModel before attaching another");
        }
    }

    static void unregister(Object layer) {
        EXTENSIONS.remove(layer);
    }
}
