package io.peft4j.runtime.internal;

/**
 * What peft4j adds to one layer instance's forward computation.
 *
 * <p>Implementations receive the forward method's first argument and its return value, both
 * {@code SDVariable}s (graph building) or both {@code INDArray}s (eager inference), and return the
 * value the forward method should return instead.
 */
public interface ForwardExtension {

    Object afterForward(Object input, Object output);
}
