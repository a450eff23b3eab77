package io.peft4j.runtime.spi;

import io.peft4j.annotations.WeightLayout;

/**
 * Reads the {@code @Weight} field of one layer class without reflection.
 *
 * <p>peft4j's annotation processor generates one implementation per layer class that can carry
 * {@code @LoRA} (named {@code <Layer>_LoRA}, in the layer's package) and registers it in
 * {@code META-INF/services/io.peft4j.runtime.spi.WeightAccessor}; the runtime finds it with
 * {@link java.util.ServiceLoader}. Hand-written implementations are possible but rarely needed.
 *
 * @param <L> the layer class
 */
public interface WeightAccessor<L> {

    /** The layer class this accessor reads. */
    Class<L> layerType();

    /** How the weight matrix is oriented: {@code [in, out]} or {@code [out, in]}. */
    WeightLayout layout();

    /** The weight field's name, for messages. */
    String weightName();

    /**
     * The current value of the layer's weight field: an {@code SDVariable} for a layer that builds a
     * SameDiff graph, or an {@code INDArray} of rank 2 for an eager layer.
     */
    Object weight(L layer);
}
