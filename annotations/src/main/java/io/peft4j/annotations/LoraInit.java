package io.peft4j.annotations;

/**
 * How a new LoRA branch's factors {@code A [in, r]} and {@code B [r, out]} start (Hugging Face PEFT's
 * {@code init_lora_weights}). Every choice leaves the adapted model equal to the base model at step 0.
 */
public enum LoraInit {

    /** PEFT's default ({@code init_lora_weights = true}): A kaiming-uniform {@code U(-1/√in, 1/√in)}, B = 0. */
    DEFAULT("true"),

    /** {@code "gaussian"}: A ~ {@code N(0, (1/r)²)}, B = 0. */
    GAUSSIAN("gaussian"),

    /**
     * {@code "pissa"} (Meng et al., 2024): A and B from the top-r singular triplets of the weight,
     * {@code B·A·s = U_r S_r V_rᵀ}, and the weight replaced by its residual {@code W - s·B·A}, so the
     * principal part trains and the rest stays frozen.
     */
    PISSA("pissa"),

    /**
     * {@code "olora"} (Büyükakyüz, 2024): A and B from the weight's QR decomposition ({@code B = Q_r},
     * {@code A = R_r}), and the weight replaced by {@code W - s·B·A}.
     */
    OLORA("olora");

    private final String peftName;

    LoraInit(String peftName) {
        this.peftName = peftName;
    }

    /** The value of {@code init_lora_weights} in PEFT's config ({@code true} is written as a boolean). */
    public String peftName() {
        return peftName;
    }

    /** Whether the initialisation rewrites the base weight to the residual {@code W - s·B·A}. */
    public boolean replacesBaseWeight() {
        return this == PISSA || this == OLORA;
    }
}
