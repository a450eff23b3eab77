package io.peft4j.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Prefix tuning (Li and Liang, 2021): trainable key and value prefixes {@code [n, d]} for every
 * adapted attention layer, placed in front of the key and value projections' outputs along the
 * sequence axis.
 *
 * <p>Goes on an attention class (or field) whose key and value projections are layer fields named by
 * {@link #keys()} and {@link #values()}; their outputs {@code [batch, T, d]} become
 * {@code [batch, n + T, d]}. The contract for the attention code: it takes the key length from the
 * keys, and an attention mask over keys covers the {@code n} prefix positions (first), which every
 * query may attend to.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.TYPE, ElementType.FIELD})
public @interface PrefixTuning {

    /** n, the number of prefix positions; must be positive. */
    int virtualTokens() default 20;

    /**
     * Reparametrise the prefixes during training as Li and Liang do: an embedding {@code [n, d]}
     * through a two-layer tanh MLP; only the resulting prefixes are saved.
     */
    boolean projection() default false;

    /** The hidden width of the projection MLP (Hugging Face PEFT's {@code encoder_hidden_size}); 0 means d. */
    int projectionHidden() default 0;

    /** The name of the field holding the key projection. */
    String keys() default "key";

    /** The name of the field holding the value projection. */
    String values() default "value";
}
