package io.peft4j.runtime.method;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;

/**
 * The 0/1 scalar in a graph that switches one adapter's contribution: 1 while the adapter is active and
 * not deleted. Graphs multiply by it, so switching adapters changes a value, never the graph.
 */
public final class AdapterGate {

    private final GraphScalar scalar;
    private boolean active;
    private boolean removed;

    /** A gate named {@code name} in {@code sameDiff}, off until {@link #setActive}. */
    public AdapterGate(SameDiff sameDiff, String name, DataType dtype) {
        this.scalar = new GraphScalar(sameDiff, name, dtype, 0);
    }

    /** The scalar {@code []} that graphs multiply the adapter's contribution by. */
    public SDVariable variable() {
        return scalar.variable();
    }

    /** Whether the adapter contributes now. */
    public boolean on() {
        return active && !removed;
    }

    public void setActive(boolean value) {
        this.active = value;
        scalar.set(on() ? 1 : 0);
    }

    /** The adapter was deleted: the gate stays shut whatever is set later. */
    public void remove() {
        this.removed = true;
        setActive(active);
    }
}
