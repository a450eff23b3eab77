package io.peft4j.runtime;

/** What training does with a step whose loss or trainable gradients are NaN or infinite. */
public enum NonFinitePolicy {

    /** Undo the step and stop with an error naming the step and the first non-finite variable (the default). */
    STOP,

    /** Undo the step (parameters and optimizer state as before it) and go on with the next batch. */
    SKIP_BATCH
}
