package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.spi.WeightAccessor;
import java.util.Map;
import java.util.ServiceLoader;
import java.util.concurrent.ConcurrentHashMap;

/** Finds the generated {@link WeightAccessor} of a layer class through {@link ServiceLoader}. */
public final class WeightAccessors {

    private static final Map<Class<?>, WeightAccessor<?>> CACHE = new ConcurrentHashMap<>();

    private WeightAccessors() {
    }

    public static <L> WeightAccessor<L> forLayer(Class<L> layerType, String path) {
        return forLayer(layerType, path, "@LoRA");
    }

    /** The accessor of {@code layerType}, for a layer at {@code path} that {@code annotation} needs the weight of. */
    @SuppressWarnings("unchecked")
    public static <L> WeightAccessor<L> forLayer(Class<L> layerType, String path, String annotation) {
        WeightAccessor<?> cached = CACHE.get(layerType);
        if (cached != null) {
            return (WeightAccessor<L>) cached;
        }
        for (WeightAccessor<?> accessor : ServiceLoader.load(WeightAccessor.class, classLoaderOf(layerType))) {
            CACHE.putIfAbsent(accessor.layerType(), accessor);
        }
        WeightAccessor<?> found = CACHE.get(layerType);
        if (found == null) {
            throw new PeftException("Layer '" + path + "' (" + layerType.getName() + ") is used by " + annotation + " but no "
                    + "generated accessor " + layerType.getName().replace('$', '_') + "_LoRA is registered: compile the model "
                    + "with peft4j-processor on the annotation processor path (it needs exactly one @Weight field and one forward method)");
        }
        return (WeightAccessor<L>) found;
    }

    private static ClassLoader classLoaderOf(Class<?> type) {
        ClassLoader loader = type.getClassLoader();
        return loader != null ? loader : ClassLoader.getSystemClassLoader();
    }
}
