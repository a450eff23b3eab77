package io.peft4j.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Prompt tuning (Lester et al., 2021): {@code n} trainable virtual-token embeddings {@code [n, d]}
 * prepended to an embedding layer's output for every sequence of the batch.
 *
 * <p>Goes on an embedding layer (class or field): a layer whose {@code @Weight} is the vocabulary
 * table {@code [vocabulary, d]} and whose forward method maps token ids {@code [batch, T]} to
 * {@code [batch, T, d]}. Afterwards its output is {@code [batch, n + T, d]}: the layers after it must
 * take the sequence length from their input, and a padding mask or pooling must cover the {@code n}
 * prompt positions (which come first).
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.TYPE, ElementType.FIELD})
public @interface PromptTuning {

    /** n, the number of virtual tokens; must be positive. */
    int virtualTokens() default 20;

    /** How the prompt rows start. */
    PromptInit init() default PromptInit.RANDOM;

    /** For {@link PromptInit#TEXT}: the text whose token ids (repeated or cut to n) pick the starting rows. */
    String text() default "";
}
