package io.peft4j.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks the weight matrix of a layer, the one that LoRA adapts and that merging rewrites.
 *
 * <p>The field holds an {@code SDVariable} (a SameDiff variable) or an {@code INDArray}, of
 * rank 2, and must not be private: peft4j's generated merge utility, which lives in the
 * layer's package, writes it directly.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.FIELD)
public @interface Weight {

    /** How the matrix is laid out; see {@link WeightLayout}. */
    WeightLayout layout() default WeightLayout.IN_OUT;
}
