package io.peft4j.runtime;

import java.util.HashMap;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Supplier;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The state that a run of eager forward passes over one sequence keeps between its passes (a
 * decoder feeding one token at a time): arrays that layers derive from their weights once instead of
 * every pass, and native op contexts that their ND4J ops reuse instead of building one per call.
 *
 * <p>Why: a decoding step of a small model is a hundred or so ND4J calls on {@code [1, d]} rows, and
 * a custom op called the plain way ({@code Nd4j.exec(op)}) computes its output shape natively, creates
 * a native context, copies its arguments into it and frees it again on every call; reusing the
 * context leaves the call itself. A layer can also keep its weight in the layout its one-row products
 * run fastest in (for ND4J's {@code xw_plus_b}, {@code [out, in]}), which it cannot keep in the
 * weight itself. BENCHMARKS.md has the measurements.
 *
 * <p>A layer's eager forward asks for {@link #current()}; where there is none (a plain call), it runs
 * its ops the plain way, so the same forward serves both. Passes run through {@link #run(Supplier)},
 * which makes the session current on the calling thread and runs the pass in
 * {@link EagerInference}'s reused memory.
 *
 * <p>Contract: derived arrays are computed from the weights as they are at a layer's first pass in
 * the session, so change weights (training, merging, loading) and switch adapters between sessions,
 * not within one (a key/value cache requires that anyway). One thread at a time: a session belongs to
 * one sequence; decode several sequences at once with one session each. Nothing here is
 * CPU-specific: op contexts are ND4J's, on every backend.
 */
public final class EagerSession implements AutoCloseable {
    private static final ThreadLocal<EagerSession> CURRENT = new ThreadLocal<>();

    private final Map<Key, INDArray> derived = new HashMap<>();
    private final Map<Key, ReusedOp> ops = new HashMap<>();
    private boolean closed;

    private record Key(Object owner, String name) {
        @Override
        public boolean equals(Object other) {
            // Layers are told apart by identity: two equal layers still have separate weights.
            return other instanceof Key key && key.owner == owner && key.name.equals(name);
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(owner) * 31 + name.hashCode();
        }
    }

    private record ReusedOp(CustomOp op, OpContext context) {
    }

    /** An empty session, for one sequence. */
    public EagerSession() {
    }

    /** The session whose {@link #run} is in progress on this thread, if any. */
    public static Optional<EagerSession> current() {
        return Optional.ofNullable(CURRENT.get());
    }

    /**
     * Runs one eager pass with this session current on the calling thread, in
     * {@link EagerInference}'s reused memory, and returns its result detached from that memory.
     */
    public INDArray run(Supplier<INDArray> forward) {
        if (closed) {
            throw new IllegalStateException("this eager session is closed: open a new one for the next sequence");
        }
        if (CURRENT.get() != null) {
            throw new IllegalStateException("an eager session is already running a pass on this thread: passes do not nest");
        }
        CURRENT.set(this);
        try {
            return EagerInference.run(forward);
        } finally {
            CURRENT.remove();
        }
    }

    /**
     * The array {@code owner} derives under {@code name} (a weight's transpose, say), computed by
     * {@code compute} on the first request in this session and kept, outside any workspace, until the
     * session ends.
     */
    public INDArray derived(Object owner, String name, Supplier<INDArray> compute) {
        Key key = new Key(Objects.requireNonNull(owner, "owner"), name);
        INDArray array = derived.get(key);
        if (array == null) {
            try (MemoryWorkspace outside = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
                array = compute.get();
            }
            derived.put(key, array);
        }
        return array;
    }

    /**
     * Runs a custom op into {@code output} with {@code inputs}, reusing the native context of
     * {@code owner}'s op {@code name} from its earlier calls in this session: {@code op} builds it on
     * the first call, and its integer, float, boolean and type arguments are kept for every later
     * call, so a name stands for one set of arguments. The caller allocates {@code output} with the
     * shape the op produces (ND4J does not compute it here) and gets it back.
     */
    public INDArray exec(Object owner, String name, Supplier<? extends CustomOp> op, INDArray output, INDArray... inputs) {
        ReusedOp reused = ops.computeIfAbsent(new Key(Objects.requireNonNull(owner, "owner"), name), key -> prepare(op.get()));
        for (int i = 0; i < inputs.length; i++) {
            reused.context().setInputArray(i, inputs[i]);
        }
        reused.context().setOutputArray(0, output);
        Nd4j.getExecutioner().exec(reused.op(), reused.context());
        return output;
    }

    private static ReusedOp prepare(CustomOp op) {
        OpContext context = Nd4j.getExecutioner().buildContext();
        context.setIArguments(op.iArgs());
        context.setTArguments(op.tArgs());
        context.setBArguments(op.bArgs());
        context.setDArguments(op.dArgs());
        return new ReusedOp(op, context);
    }

    /** Derived arrays and op contexts held now (what the session reuses). */
    public int reusedCount() {
        return derived.size() + ops.size();
    }

    /**
     * Ends the session: drops its derived arrays and op contexts. (ND4J frees a context's native
     * memory when the context is collected; closing one explicitly is a no-op in 1.0.0-M2.1, and
     * freeing it here as well could free it twice.)
     */
    @Override
    public void close() {
        closed = true;
        ops.clear();
        derived.clear();
    }
}
