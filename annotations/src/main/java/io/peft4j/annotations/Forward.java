package io.peft4j.annotations;

import java.lang.annotation.Documented;
import java.lang.annotation.ElementType;
import java.lang.annotation.Retention;
import java.lang.annotation.RetentionPolicy;
import java.lang.annotation.Target;

/**
 * Marks a layer's forward method when it is not the single public method named {@code forward} (or
 * the pair of them that build a graph from an {@code SDVariable} and compute eagerly on an
 * {@code INDArray}: both are adapted without marks).
 *
 * <p>The forward method's first parameter is the layer input {@code x [batch, …, in]} and its
 * return value the layer output {@code y [batch, …, out]}; both are {@code SDVariable}s when the
 * method builds a SameDiff graph, or {@code INDArray}s for eager inference.
 */
@Documented
@Retention(RetentionPolicy.RUNTIME)
@Target(ElementType.METHOD)
public @interface Forward {
}
