package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.spi.WeightAccessor;
import java.lang.reflect.Field;

/**
 * A stand-in for the accessors peft4j-processor generates, for the runtime's own test layers (the
 * processor's tests depend on the runtime, so the runtime's tests cannot run the processor).
 */
abstract class FieldWeightAccessor<L> implements WeightAccessor<L> {

    private final Class<L> layerType;
    private final Field field;
    private final WeightLayout layout;

    FieldWeightAccessor(Class<L> layerType, String fieldName, WeightLayout layout) {
        try {
            this.layerType = layerType;
            this.field = layerType.getDeclaredField(fieldName);
            this.field.setAccessible(true);
            this.layout = layout;
        } catch (NoSuchFieldException e) {
            throw new IllegalArgumentException(e);
        }
    }

    @Override
    public Class<L> layerType() {
        return layerType;
    }

    @Override
    public WeightLayout layout() {
        return layout;
    }

    @Override
    public String weightName() {
        return field.getName();
    }

    @Override
    public Object weight(L layer) {
        try {
            return field.get(layer);
        } catch (IllegalAccessException e) {
            throw new IllegalStateException(e);
        }
    }
}
