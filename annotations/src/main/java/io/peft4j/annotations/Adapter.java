package io.peft4j.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Adds a bottleneck adapter after a layer: {@code y = h + up(act(down(h)))}, where {@code h} is the
 * layer's output.
 *
 * <p>Shapes, for an output {@code h [..., d]} and bottleneck size {@code b}: {@code down [d, b]} and
 * bias {@code [b]}, {@code up [b, d]} and bias {@code [d]}, so {@code 2·d·b + b + d} parameters.
 * {@code up} and its bias start at zero, so the adapted model starts identical to the base.
 *
 * <p>Placement is where the annotation goes, as in AdapterHub: {@link AdapterPreset#PFEIFFER} on the
 * feed-forward block only, {@link AdapterPreset#HOULSBY} on the attention block and on the
 * feed-forward block. Unlike LoRA, adapters cannot be merged into the base weights: they add
 * inference latency.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target({ElementType.TYPE, ElementType.FIELD})
public @interface Adapter {

    /** The AdapterHub configuration whose activation this adapter uses unless {@link #activation()} is given. */
    AdapterPreset preset() default AdapterPreset.PFEIFFER;

    /** {@code b = d / reductionFactor}; must be positive. Ignored when {@link #size()} is given. */
    int reductionFactor() default 16;

    /** An explicit bottleneck size {@code b}; 0 means {@code d / reductionFactor}. */
    int size() default 0;

    /** {@code relu}, {@code gelu}, {@code swish} (also {@code silu}) or {@code tanh}; empty means the preset's. */
    String activation() default "";
}
