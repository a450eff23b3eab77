package io.peft4j.runtime.bridge;

import io.peft4j.runtime.PeftException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.function.Supplier;

/**
 * The single entry point from instrumented layer code into the runtime, and the registry of what
 * each layer instance carries.
 *
 * <p>The peft4j agent inlines a call to {@link #beforeForward} on entry to a layer's forward method and
 * to {@link #afterForward} at every exit. Instances that no {@code PeftModel} adapted pass through untouched. A layer may carry
 * several extensions of different kinds (LoRA inside it, a bottleneck adapter after it); they apply in
 * {@link ForwardExtension#order()}, then registration order. Layers are held weakly and extensions
 * hold their layers weakly, so registering never keeps a model alive. Thread-safe: reads take an
 * immutable snapshot, writes are serialised.
 */
public final class ForwardDispatcher {

    private static final IdentityWeakMap<Object, List<ForwardExtension>> EXTENSIONS = new IdentityWeakMap<>();

    private ForwardDispatcher() {
    }

    /**
     * Called by the agent's advice when {@code layer}'s forward method is entered with {@code input};
     * returns the input the method computes with (its extensions may rescale it).
     */
    public static Object beforeForward(Object layer, Object input) {
        List<ForwardExtension> extensions = EXTENSIONS.get(layer);
        if (extensions == null) {
            return input;
        }
        Object result = input;
        for (ForwardExtension extension : extensions) {
            result = extension.beforeForward(result);
        }
        return result;
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

    /**
     * The extension of {@code type} that {@code owner} registered on {@code layer}, or a new one from
     * {@code create}, registered now.
     *
     * @throws PeftException if another owner registered an extension of {@code type} on the layer
     */
    public static synchronized <E extends ForwardExtension> E extensionOf(Object layer, Class<E> type, Object owner,
                                                                          Supplier<E> create, String path) {
        List<ForwardExtension> existing = EXTENSIONS.get(layer);
        if (existing != null) {
            for (ForwardExtension extension : existing) {
                if (type.isInstance(extension)) {
                    if (extension.owner() != owner) {
                        throw new PeftException("Layer '" + path + "' (" + layer.getClass().getName() + ") already has PEFT attached ("
                                + type.getSimpleName() + ") by another PeftModel: call detach() on that PeftModel first, or add "
                                + "this adapter to it with addAdapter(name)");
                    }
                    return type.cast(extension);
                }
            }
        }
        E created = create.get();
        List<ForwardExtension> extensions = new ArrayList<>();
        if (existing != null) {
            extensions.addAll(existing);
        }
        extensions.add(created);
        extensions.sort(Comparator.comparingInt(ForwardExtension::order)); // stable: registration order within an order
        EXTENSIONS.put(layer, List.copyOf(extensions));
        return created;
    }

    /** Removes {@code extension} from {@code layer} (nothing happens if it is not there). */
    public static synchronized void unregister(Object layer, ForwardExtension extension) {
        if (layer == null) {
            return;
        }
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

    /** How many layers carry extensions now (an entry goes shortly after its layer is collected). */
    public static int registeredLayers() {
        return EXTENSIONS.size();
    }
}
