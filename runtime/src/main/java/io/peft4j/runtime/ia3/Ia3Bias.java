package io.peft4j.runtime.ia3;

import io.peft4j.runtime.PeftException;
import java.lang.reflect.Field;
import java.lang.reflect.Modifier;
import java.util.ArrayList;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Finds the bias an (IA)³ output vector must also scale when it is merged: PEFT scales
 * {@code base_layer.bias}, and a Java layer has no such convention, so the bias is the layer's one
 * field (other than its weight) holding an {@code SDVariable} or {@code INDArray} of {@code out}
 * elements, shaped {@code [out]} or {@code [1, out]}. None means the layer has no bias; more than one
 * is an error, since merging would have to guess.
 */
final class Ia3Bias {

    private Ia3Bias() {
    }

    /** The bias array of {@code layer}, or {@code null} if it has none. */
    static INDArray of(Object layer, String path, String weightField, long out) {
        List<String> names = new ArrayList<>();
        List<INDArray> arrays = new ArrayList<>();
        for (Class<?> type = layer.getClass(); type != null && type != Object.class; type = type.getSuperclass()) {
            for (Field field : type.getDeclaredFields()) {
                if (Modifier.isStatic(field.getModifiers()) || field.getName().equals(weightField)) {
                    continue;
                }
                INDArray array = arrayOf(field, layer);
                if (array != null && array.length() == out && (array.rank() == 1 || array.rank() == 2 && array.size(0) == 1)) {
                    names.add(field.getName());
                    arrays.add(array);
                }
            }
        }
        if (arrays.size() > 1) {
            throw new PeftException("Cannot merge an (IA)³ output vector into layer '" + path + "' (" + layer.getClass().getName()
                    + "): its fields " + names + " all look like a bias of " + out + " elements, and the merge must scale the bias "
                    + "with the weight; keep the adapter unmerged, or make the layer hold one bias field");
        }
        return arrays.isEmpty() ? null : arrays.get(0);
    }

    private static INDArray arrayOf(Field field, Object layer) {
        if (!SDVariable.class.isAssignableFrom(field.getType()) && !INDArray.class.isAssignableFrom(field.getType())) {
            return null;
        }
        try {
            field.setAccessible(true);
            Object value = field.get(layer);
            return value instanceof SDVariable variable ? variable.getArr() : (INDArray) value;
        } catch (ReflectiveOperationException | RuntimeException inaccessible) {
            return null;
        }
    }
}
