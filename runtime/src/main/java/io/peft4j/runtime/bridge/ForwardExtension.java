package io.peft4j.runtime.bridge;

/**
 * What peft4j adds to one layer instance's forward computation.
 *
 * <p>Implementations receive the forward method's first argument and its return value, both
 * {@code SDVariable}s (graph building) or both {@code INDArray}s (eager inference), and return the
 * value the forward method should return instead.
 *
 * <p>An extension must not hold its layer strongly: the dispatcher holds layers weakly so that a
 * model nobody references can be collected, and a strong reference from its own extension would keep
 * it alive.
 */
public interface ForwardExtension {

    /**
     * Called on entry to the forward method (by the agent; hand-woven layers may not call it): returns
     * the input the method should compute with instead of {@code input}. Unchanged by default.
     */
    default Object beforeForward(Object input) {
        return input;
    }

    Object afterForward(Object input, Object output);

    /**
     * Extensions of one layer apply in ascending order: changes inside the layer's computation (a LoRA
     * branch, 0) before what follows the layer (a bottleneck adapter, 100).
     */
    default int order() {
        return 0;
    }

    /** The token of the {@code PeftModel} that registered this extension. */
    Object owner();
}
