package io.peft4j.processor;

import com.squareup.javapoet.ClassName;
import io.peft4j.annotations.WeightLayout;
import javax.lang.model.element.ExecutableElement;
import javax.lang.model.element.TypeElement;
import javax.lang.model.element.VariableElement;

/**
 * A validated layer class that LoRA can adapt: its one {@code @Weight} field and its forward method.
 *
 * @param type         the layer class
 * @param weightField  the {@code @Weight} field, an {@code SDVariable} or {@code INDArray}
 * @param layout       the weight's layout from {@code @Weight(layout = ...)}
 * @param forward      the forward method the agent wraps
 * @param accessorName {@code <Layer>_LoRA} in the layer's package ({@code Outer_Inner_LoRA} for nested classes)
 */
record LayerClass(TypeElement type, VariableElement weightField, WeightLayout layout, ExecutableElement forward,
                  ClassName accessorName) {
}
