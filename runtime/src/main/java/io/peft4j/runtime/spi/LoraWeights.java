package io.peft4j.runtime.spi;

import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The trained factors of one LoRA branch.
 *
 * @param a       {@code A [in, r]}
 * @param b       {@code B [r, out]}
 * @param scaling {@code s}: {@code alpha / r}, or {@code alpha / √r} with rsLoRA
 */
public record LoraWeights(INDArray a, INDArray b, double scaling) {

    public LoraWeights {
        if (a.rank() != 2 || b.rank() != 2 || a.size(1) != b.size(0)) {
            throw new IllegalArgumentException("LoRA factors must be A [in, r] and B [r, out], got A "
                    + java.util.Arrays.toString(a.shape()) + " and B " + java.util.Arrays.toString(b.shape()));
        }
    }

    /** {@code in}, the number of input features. */
    public long in() {
        return a.size(0);
    }

    /** {@code out}, the number of output features. */
    public long out() {
        return b.size(1);
    }

    /** {@code r}, the rank. */
    public long rank() {
        return a.size(1);
    }
}
