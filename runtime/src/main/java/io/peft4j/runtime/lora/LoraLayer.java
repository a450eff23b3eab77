package io.peft4j.runtime.lora;

import io.peft4j.annotations.LoraInit;
import org.nd4j.linalg.api.ndarray.INDArray;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.spi.LoraWeights;

/**
 * A read-only view of one adapter's LoRA branch on one layer.
 *
 * @param path      the layer's field path from the model root, e.g. {@code encoder.layers.0.attention.query}
 * @param layerType the layer's class
 * @param in        input features of the layer's weight
 * @param out       output features of the layer's weight
 * @param rank      r
 * @param alpha     the scaling numerator
 * @param dropout   the dropout rate applied to the branch input in training
 * @param rslora    whether the scale is {@code alpha / √r}
 * @param layout    the layer's weight layout
 * @param weights   the live factors {@code A [in, r]}, {@code B [r, out]} (not copies) and the scale
 * @param magnitude DoRA's live magnitude vector {@code [out]} (not a copy), or {@code null} for plain LoRA
 * @param init      how A and B were initialised
 */
public record LoraLayer(String path, Class<?> layerType, long in, long out, int rank, double alpha, double dropout,
                        boolean rslora, WeightLayout layout, LoraWeights weights, INDArray magnitude, LoraInit init) {

    /** Whether the layer computes DoRA. */
    public boolean dora() {
        return magnitude != null;
    }

    /** The number of trainable parameters in this layer: {@code r · (in + out)}, plus {@code out} with DoRA. */
    public long parameterCount() {
        return (long) rank * (in + out) + (magnitude == null ? 0 : out);
    }
}
