package io.peft4j.spark;

import io.peft4j.runtime.PeftException;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.util.Collections;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import org.nd4j.linalg.api.ndarray.INDArray;

/** The base weights each JVM has read, by base name: an executor reads a base once, however many tasks and steps use it. */
final class BaseWeightsCache {

    private static final Map<String, Map<String, INDArray>> LOADED = new ConcurrentHashMap<>();

    private BaseWeightsCache() {
    }

    static Map<String, INDArray> get(ModelSource<?> source) {
        return LOADED.computeIfAbsent(source.baseName(), name -> {
            try {
                Map<String, INDArray> weights = source.loadBase();
                if (weights == null || weights.isEmpty()) {
                    throw new PeftException("The base '" + name + "' loaded no weights: " + source.getClass().getName()
                            + ".loadBase() returned " + (weights == null ? "null" : "an empty map"));
                }
                return Collections.unmodifiableMap(weights);
            } catch (IOException e) {
                throw new UncheckedIOException("The base '" + name + "' cannot be read on this executor: " + e.getMessage(), e);
            }
        });
    }

    /** How many bases this JVM holds (for tests). */
    static int size() {
        return LOADED.size();
    }
}
