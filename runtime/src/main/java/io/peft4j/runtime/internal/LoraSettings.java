package io.peft4j.runtime.internal;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftException;

/**
 * The validated values of one {@code @LoRA} annotation.
 *
 * <p>The annotation processor rejects bad values at compile time; they are checked again here
 * because annotated classes can be compiled without it.
 */
public record LoraSettings(int rank, double alpha, double dropout, boolean rslora) {

    public static LoraSettings of(LoRA annotation, String where) {
        if (annotation.rank() <= 0) {
            throw new PeftException("@LoRA(rank = " + annotation.rank() + ") on " + where + ": rank must be positive");
        }
        if (!(annotation.alpha() > 0)) {
            throw new PeftException("@LoRA(alpha = " + annotation.alpha() + ") on " + where + ": alpha must be positive");
        }
        if (!(annotation.dropout() >= 0 && annotation.dropout() < 1)) {
            throw new PeftException("@LoRA(dropout = " + annotation.dropout() + ") on " + where + ": dropout must be in [0, 1)");
        }
        return new LoraSettings(annotation.rank(), annotation.alpha(), annotation.dropout(), annotation.rslora());
    }

    /** {@code s = alpha / r}, or {@code alpha / √r} with rsLoRA. */
    public double scaling() {
        return rslora ? alpha / Math.sqrt(rank) : alpha / rank;
    }
}
