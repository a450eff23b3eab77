package io.peft4j.runtime;

/**
 * How {@link PeftModel#addWeightedAdapter} combines LoRA adapters {@code i} with weights {@code w_i}
 * and scales {@code s_i} into one adapter of scale 1, as Hugging Face PEFT's
 * {@code add_weighted_adapter} does.
 */
public enum Combination {

    /**
     * {@code A = Σ sign(w_i s_i) √|w_i s_i| A_i}, {@code B = Σ √|w_i s_i| B_i}; all sources must have the
     * same rank per layer. Exact for one adapter; with several, {@code A·B} holds cross terms
     * {@code A_i·B_j} that the weighted sum of deltas does not (see the report's errors).
     */
    LINEAR,

    /** {@code A = [w_1 s_1 A_1 | w_2 s_2 A_2 | …]}, {@code B = [B_1; B_2; …]}: rank Σ r_i, exactly the weighted sum of deltas. */
    CAT,

    /**
     * The top-r singular vectors of {@code Σ w_i s_i A_i B_i}: rank r (the largest source rank unless
     * given), the best rank-r approximation of the weighted sum.
     */
    SVD
}
