package io.peft4j.runtime.method;

import java.lang.reflect.Field;

/**
 * One object reachable from a model's root through its fields.
 *
 * @param path  the field path from the root, with list and array indices and map keys as segments:
 *              {@code encoder.layers.3.attention.query}, the shape of a Hugging Face module path
 * @param field the field that holds it, or {@code null} for a list, array or map element
 * @param value the object itself: a layer, an {@code SDVariable}, an {@code INDArray}, a list, ...
 */
public record ModelNode(String path, Field field, Object value) {
}
