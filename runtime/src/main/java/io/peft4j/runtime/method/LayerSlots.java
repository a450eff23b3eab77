package io.peft4j.runtime.method;

import io.peft4j.runtime.PeftException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;

/**
 * One method's modules on one layer instance, one per named adapter (PEFT's {@code lora_A[adapter]},
 * {@code ia3_l[adapter]}): what a method's forward extension iterates over. Thread-safe; iteration
 * works on a snapshot.
 *
 * @param <M> the module type
 */
public final class LayerSlots<M> {

    private final String path;
    private final String what;
    private final Function<M, String> adapterOf;
    private final Map<String, M> modules = new LinkedHashMap<>();

    /** For the layer at {@code path}; {@code what} names a module in errors ("a LoRA branch"). */
    public LayerSlots(String path, String what, Function<M, String> adapterOf) {
        this.path = path;
        this.what = what;
        this.adapterOf = adapterOf;
    }

    /** Adds {@code module}; refuses a second one of the same adapter. */
    public synchronized void add(M module) {
        String adapter = adapterOf.apply(module);
        if (modules.containsKey(adapter)) {
            throw new PeftException("Layer '" + path + "' already has " + what + " of adapter '" + adapter + "'");
        }
        modules.put(adapter, module);
    }

    /** Removes {@code module}; returns whether none is left. */
    public synchronized boolean remove(M module) {
        modules.remove(adapterOf.apply(module), module);
        return modules.isEmpty();
    }

    public synchronized boolean isEmpty() {
        return modules.isEmpty();
    }

    /** The modules now, in the order they were added. */
    public synchronized List<M> snapshot() {
        return new ArrayList<>(modules.values());
    }
}
