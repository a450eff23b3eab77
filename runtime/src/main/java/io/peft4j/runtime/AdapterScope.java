package io.peft4j.runtime;

/**
 * A temporary change of which adapters are on, undone by {@link #close()}: use it in
 * try-with-resources so the previous state comes back even when the block throws.
 */
public interface AdapterScope extends AutoCloseable {

    /** Restores the state before the scope opened. */
    @Override
    void close();
}
