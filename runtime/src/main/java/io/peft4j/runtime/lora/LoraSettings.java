package io.peft4j.runtime.lora;

import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.LoraInit;
import java.util.Objects;
import io.peft4j.runtime.PeftException;

/**
 * The validated settings of one layer's LoRA branch.
 *
 * <p>The annotation processor rejects bad annotation values at compile time; they are checked again
 * here because annotated classes can be compiled without it, and because settings also come from saved
 * configs.
 */
public record LoraSettings(int rank, double alpha, double dropout, boolean rslora, boolean dora, LoraInit init) {

    /** Plain LoRA with PEFT's default initialisation. */
    public LoraSettings(int rank, double alpha, double dropout, boolean rslora) {
        this(rank, alpha, dropout, rslora, false, LoraInit.DEFAULT);
    }

    public LoraSettings {
        Objects.requireNonNull(init, "init");
        if (rank <= 0) {
            throw new IllegalArgumentException("rank must be positive, got " + rank);
        }
        if (!(alpha > 0) || Double.isInfinite(alpha)) {
            throw new IllegalArgumentException("alpha must be positive and finite, got " + alpha);
        }
        if (!(dropout >= 0 && dropout < 1)) {
            throw new IllegalArgumentException("dropout must be in [0, 1), got " + dropout);
        }
    }

    public static LoraSettings of(LoRA annotation, String where) {
        if (annotation.rank() <= 0) {
            throw new PeftException("@LoRA(rank = " + annotation.rank() + ") on " + where + ": rank must be positive");
        }
        if (!(annotation.alpha() > 0) || Double.isInfinite(annotation.alpha())) {
            throw new PeftException("@LoRA(alpha = " + annotation.alpha() + ") on " + where + ": alpha must be positive");
        }
        if (!(annotation.dropout() >= 0 && annotation.dropout() < 1)) {
            throw new PeftException("@LoRA(dropout = " + annotation.dropout() + ") on " + where + ": dropout must be in [0, 1)");
        }
        return new LoraSettings(annotation.rank(), annotation.alpha(), annotation.dropout(), annotation.rslora(), annotation.dora(),
                annotation.init());
    }

    /** {@code s = alpha / r}, or {@code alpha / √r} with rsLoRA. */
    public double scaling() {
        return rslora ? alpha / Math.sqrt(rank) : alpha / rank;
    }
}
