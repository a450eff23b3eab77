package io.peft4j.runtime.method;

import io.peft4j.runtime.checkpoint.SafetensorsHeader;
import io.peft4j.runtime.checkpoint.TensorInfo;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

/**
 * One line of {@code peft4j inspect} for a saved adapter, read from its files alone.
 *
 * @param layer      the layer (module) path as stored, without {@code base_model.model.}
 * @param details    what the method stores for it, e.g. {@code r=8 lora_A [8, 384] lora_B [384, 8] F32}
 * @param parameters its number of parameters
 */
public record LayerSummary(String layer, String details, long parameters) {

    /** One line per tensor of {@code header}: its key, dtype and shape. */
    public static List<LayerSummary> eachTensor(SafetensorsHeader header) {
        List<LayerSummary> rows = new ArrayList<>();
        for (TensorInfo tensor : header.tensors()) {
            rows.add(new LayerSummary(tensor.name(), tensor.dtype() + " " + Arrays.toString(tensor.shape()), tensor.elements()));
        }
        return rows;
    }
}
