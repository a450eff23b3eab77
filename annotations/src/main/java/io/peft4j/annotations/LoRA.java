package io.peft4j.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Adds a trainable low-rank branch to a layer: {@code y = base(x) + dropout(x) · A · B · s}.
 *
 * <p>On a layer class, every instance of the class is adapted; on a field whose type is a
 * layer class, only the instance held by that field is (a field annotation wins over a class
 * annotation). The layer class must have exactly one {@link Weight} field and one forward
 * method (see {@link Forward}).
 *
 * <p>Shapes, for a weight of {@code in} inputs and {@code out} outputs: {@code A [in, r]}
 * initialised kaiming-uniform ({@code U(-1/√in, 1/√in)}), {@code B [r, out]} initialised to
 * zero, so an adapted model computes exactly what the base model does until it is trained.
 * The scale is {@code s = alpha / r}, or {@code alpha / √r} with {@link #rslora()}.
 *
 * <p>With {@link #dora()} the layer computes DoRA's {@code W' = m · (W + s·ΔW) / ‖W + s·ΔW‖} instead,
 * with a trainable magnitude {@code m [out]} that starts at the weight's norms per output feature.
 *
 * <p>Defaults follow Hugging Face PEFT's {@code LoraConfig}: {@code r = 8},
 * {@code lora_alpha = 8}, {@code lora_dropout = 0.0}, {@code use_rslora = false},
 * {@code use_dora = false}, {@code init_lora_weights = true}.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.TYPE, ElementType.FIELD})
public @interface LoRA {

    /** The rank r of the update; must be positive and at most {@code min(in, out)}. */
    int rank() default 8;

    /** The scaling numerator; must be positive. */
    double alpha() default 8;

    /** Dropout probability applied to the branch's input during training, in {@code [0, 1)}. */
    double dropout() default 0.0;

    /** Rank-stabilised scaling {@code alpha / √r} (Kalajdzievski, 2023) instead of {@code alpha / r}. */
    boolean rslora() default false;

    /**
     * Weight-decomposed LoRA (Liu et al., 2024; PEFT's {@code use_dora}): the weight is split into a
     * trainable magnitude per output feature and a direction that LoRA adapts. Needs a matrix weight.
     */
    boolean dora() default false;

    /** How A and B start (PEFT's {@code init_lora_weights}). */
    LoraInit init() default LoraInit.DEFAULT;
}
