package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.spi.WeightAccessor;
import java.util.Map;
import java.util.Optional;
import java.util.ServiceLoader;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;

/** Finds the generated {@link WeightAccessor} of a layer class through {@link ServiceLoader}. */
public final class WeightAccessors {

    private static final Map<Class<?>, WeightAccessor<?>> CACHE = new ConcurrentHashMap<>();
    private static final Set<ClassLoader> LOADED = ConcurrentHashMap.newKeySet();

    private WeightAccessors() {
    }

    /** The accessor of {@code layerType}, for a layer at {@code path} that {@code annotation} needs the weight of. */
    public static WeightAccessor<Object> forLayer(Class<?> layerType, String path, String annotation) {
        return find(layerType).orElseThrow(() -> new PeftException("Layer '" + path + "' (" + layerType.getName() + ") is used by "
                + annotation + " but no generated accessor " + layerType.getName().replace('$', '_') + "_LoRA is registered: compile "
                + "the model with peft4j-processor on the annotation processor path (it needs exactly one @Weight field and one "
                + "forward method)"));
    }

    /** The accessor of {@code layerType}, if the processor generated one (the class has a {@code @Weight} and is used by an annotation). */
    @SuppressWarnings("unchecked")
    public static Optional<WeightAccessor<Object>> find(Class<?> layerType) {
        WeightAccessor<?> cached = CACHE.get(layerType);
        if (cached == null && LOADED.add(classLoaderOf(layerType))) {
            for (WeightAccessor<?> accessor : ServiceLoader.load(WeightAccessor.class, classLoaderOf(layerType))) {
                CACHE.putIfAbsent(accessor.layerType(), accessor);
            }
            cached = CACHE.get(layerType);
        }
        return Optional.ofNullable((WeightAccessor<Object>) cached);
    }

    private static ClassLoader classLoaderOf(Class<?> type) {
        ClassLoader loader = type.getClassLoader();
        return loader != null ? loader : ClassLoader.getSystemClassLoader();
    }
}
