package io.peft4j.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * (IA)³ (Liu et al., 2022; Hugging Face PEFT's {@code IA3}): a learned vector that rescales a layer's
 * output, {@code y ⊙ l} with {@code l [out]} (the key and value projections of attention), or, with
 * {@link #feedforward()}, its input, {@code base(x ⊙ l)} with {@code l [in]} (the output projection of
 * a feed-forward block). The vector starts at ones, so the model starts unchanged, and merges into the
 * weight (and, for an output vector, the bias).
 *
 * <p>On a layer class, every instance is adapted; on a field, only the instance it holds. The layer
 * class needs one forward method and one matrix weight ({@link Weight}, or its only rank-2 weight field);
 * its forward must be {@code x · W} plus an optional bias, as for {@link LoRA}.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.TYPE, ElementType.FIELD})
public @interface IA3 {

    /**
     * Rescale the layer's input instead of its output (PEFT's {@code feedforward_modules}); PEFT's
     * recipe is output vectors on keys and values and an input vector on the feed-forward output projection.
     */
    boolean feedforward() default false;
}
