package io.peft4j.annotations;

/** The orientation of a {@link Weight} matrix relative to the layer's input and output. */
public enum WeightLayout {

    /** {@code W [in, out]}, used as {@code y = x · W} (ND4J and ONNX MatMul convention). */
    IN_OUT,

    /**
     * {@code W [out, in]}, used as {@code y = x · Wᵀ} (PyTorch's {@code nn.Linear}); Hugging Face
     * PEFT calls this {@code fan_in_fan_out = false}.
     */
    OUT_IN
}
