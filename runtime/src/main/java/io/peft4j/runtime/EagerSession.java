package io.peft4j.runtime;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import java.util.Optional;
import java.util.function.Supplier;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import io.peft4j.runtime.internal.ReplayKernels;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.Op;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.AddOp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Native op contexts and output arrays that the eager forward passes of one sequence (a decoder
 * feeding one token at a time) reuse from pass to pass instead of building and allocating them per op
 * call.
 *
 * <p>Why: a decoding step of a small model is a hundred or so ND4J calls on {@code [1, d]} rows, and
 * a custom op called the plain way ({@code Nd4j.exec(op)}) computes its output shape natively, creates
 * a native context, copies its arguments into it and leaves it to ND4J's deallocator on every call;
 * with a reused context only the arrays are swapped (BENCHMARKS.md has the measurements).
 *
 * <p>A layer's eager forward calls its ops through {@link #call}: in the {@link #current()} session
 * they reuse their contexts, and where there is none (a plain call) they run the plain way, so the
 * same forward serves both. Passes run through {@link #run(Supplier)}, which makes the session current
 * on the calling thread and runs the pass in {@link EagerInference}'s reused memory.
 *
 * <p>It also keeps the layers' output arrays ({@link #outputFor}), allocated once and reused by later
 * passes: allocating an op's output cost about as much as the op on {@code [1, d]} rows.
 *
 * <p>On ND4J's CPU backend, in a JVM started with {@code --add-modules jdk.incubator.vector}, the ops
 * that peft4j's vector kernels cover run in them instead ({@link ReplayKernels}: one-row products,
 * {@code layer_norm}, one query's {@code dot_product_attention}, elementwise ops and GELU on small
 * arrays): a kernel bound to a call's arrays runs again while the call passes the same array objects,
 * as a session's outputs and views are, and reads their current values. On a decoding step's
 * {@code [1, d]} rows a libnd4j call costs 15–60 µs around a few µs of arithmetic (BENCHMARKS.md,
 * change 22). {@code -Dpeft4j.vectorKernels=false} ({@link SameDiffTrainer#VECTOR_KERNELS}), read when
 * a session is created, keeps every op in libnd4j.
 *
 * <p>A context holds an op's arguments (axes, flags), not its arrays, so weights and adapters may
 * change between passes; a kernel takes its arguments when bound, so a name stands for one set of
 * arguments there too. One thread at a time: a session belongs to one sequence; decode several
 * sequences at once with one session each. Op contexts are ND4J's, on every backend; other backends
 * run every op in libnd4j.
 */
public final class EagerSession implements AutoCloseable {
    private static final ThreadLocal<EagerSession> CURRENT = new ThreadLocal<>();

    private final Map<Key, ReusedOp> ops = new HashMap<>();
    private final ReplayKernels kernels = ReplayKernels.forThisProcess();
    private final Map<Key, List<OutputSlot>> outputs = new HashMap<>();
    // Views of the arrays above (and of those views), by the array they view: the same objects every pass.
    private final Map<INDArray, List<View>> views = new IdentityHashMap<>();
    // Looked up with the caller's shape arrays, not boxed keys: a decoding step asks a hundred times, and
    // the garbage of boxed keys was a sixth of what a step allocated (BENCHMARKS.md, change 22).
    private int pass;
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

    /**
     * An op's reused context (none for ND4J's legacy ops) and the kernels bound to its arrays of the
     * last two shapes it was called with: a call with the same array objects as before, as a session's
     * outputs and views are, runs that kernel again without looking anything up. Two, because a
     * decoder reset for its next sequence alternates between a prompt's rows and a step's one row.
     */
    private static final class ReusedOp {
        private final DifferentialFunction op;
        private final OpContext context;
        private Binding current;
        private Binding previous;

        ReusedOp(DifferentialFunction op, OpContext context) {
            this.op = op;
            this.context = context;
        }

        Runnable kernel(ReplayKernels kernels, INDArray output, INDArray[] inputs) {
            if (current != null && current.matches(output, inputs)) {
                return current.kernel;
            }
            Binding other = previous;
            previous = current;
            if (other != null && other.matches(output, inputs)) {
                current = other;
            } else {
                Runnable kernel = op instanceof CustomOp custom
                        ? kernels.kernelFor(op, Arrays.asList(inputs), new INDArray[] {output}, custom.iArgs(), custom.tArgs(), custom.bArgs())
                        : kernels.kernelFor(op, Arrays.asList(inputs), new INDArray[] {output}, new long[0], new double[0], new boolean[0]);
                current = new Binding(inputs.clone(), output, kernel);
            }
            return current.kernel;
        }
    }

    /** A kernel ({@code null}: libnd4j's op) bound to these array objects. */
    private record Binding(INDArray[] inputs, INDArray output, Runnable kernel) {
        boolean matches(INDArray otherOutput, INDArray[] otherInputs) {
            return otherOutput == output && sameObjects(otherInputs, inputs);
        }

        private static boolean sameObjects(INDArray[] a, INDArray[] b) {
            if (b == null || a.length != b.length) {
                return false;
            }
            for (int i = 0; i < a.length; i++) {
                if (a[i] != b[i]) {
                    return false;
                }
            }
            return true;
        }

    }

    /** The arrays handed out for one owner, name, type and shape; {@code handed} counts the current pass's. */
    private static final class OutputSlot {
        private final DataType type;
        private final long[] shape;
        private final List<INDArray> arrays = new ArrayList<>(1);
        private int pass = -1;
        private int handed;

        OutputSlot(DataType type, long[] shape) {
            this.type = type;
            this.shape = shape.clone();
        }
    }

    private record View(long[] shape, INDArray array) {
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
        pass++;
        try {
            return EagerInference.run(forward);
        } finally {
            CURRENT.remove();
        }
    }

    /**
     * An array of {@code type} and {@code shape} for {@code owner}'s result {@code name} in this pass,
     * allocated once (outside any workspace) and handed out again in later passes: fresh memory for an
     * op's output cost about as much as a small op itself (BENCHMARKS.md). Like any array a pass
     * allocates, it holds its value until the next pass; a site asking twice in one pass gets two
     * arrays. Its contents are undefined until written.
     */
    public INDArray output(Object owner, String name, DataType type, long... shape) {
        Key site = new Key(Objects.requireNonNull(owner, "owner"), name);
        List<OutputSlot> slots = outputs.get(site);
        if (slots == null) {
            slots = new ArrayList<>(1);
            outputs.put(site, slots);
        }
        OutputSlot slot = null;
        for (OutputSlot candidate : slots) {
            if (candidate.type == type && Arrays.equals(candidate.shape, shape)) {
                slot = candidate;
                break;
            }
        }
        if (slot == null) {
            slot = new OutputSlot(type, shape);
            slots.add(slot);
        }
        if (slot.pass != pass) {
            slot.pass = pass;
            slot.handed = 0;
        }
        int index = slot.handed++;
        if (index == slot.arrays.size()) {
            try (MemoryWorkspace outside = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
                INDArray array = Nd4j.createUninitialized(type, shape);
                slot.arrays.add(array);
                views.put(array, new ArrayList<>(1));
            }
        }
        return slot.arrays.get(index);
    }

    /** The kernels of the {@link #current()} session, {@link ReplayKernels#NONE} without one. */
    static ReplayKernels currentKernels() {
        EagerSession session = CURRENT.get();
        return session != null ? session.kernels : ReplayKernels.NONE;
    }

    /**
     * {@link #output} of the {@link #current()} session, or, without one, a new array (in the pass's
     * memory, if any).
     */
    public static INDArray outputFor(Object owner, String name, DataType type, long... shape) {
        EagerSession session = CURRENT.get();
        return session != null ? session.output(owner, name, type, shape) : Nd4j.createUninitialized(type, shape);
    }

    /**
     * {@code array.reshape(shape)}, the same view object every pass where {@code array} is one of this
     * session's {@link #output} arrays or such a view: a new view costs ND4J a shape buffer and a data
     * buffer wrapper, each registered with its deallocator, and a decoding step makes dozens. Other
     * arrays are reshaped the plain way.
     */
    public INDArray reshaped(INDArray array, long... shape) {
        List<View> ofArray = views.get(array);
        if (ofArray == null) {
            return array.reshape(shape);
        }
        for (View view : ofArray) {
            if (Arrays.equals(view.shape(), shape)) {
                return view.array();
            }
        }
        INDArray view = array.reshape(shape);
        ofArray.add(new View(shape.clone(), view));
        views.putIfAbsent(view, new ArrayList<>(1));
        return view;
    }

    /** {@link #reshaped} in the {@link #current()} session, or {@code array.reshape(shape)} without one. */
    public static INDArray reshape(INDArray array, long... shape) {
        EagerSession session = CURRENT.get();
        return session != null ? session.reshaped(array, shape) : array.reshape(shape);
    }

    /**
     * {@code a + b} (same shapes) in a new {@link #outputFor} array of {@code owner} and {@code name}:
     * an adapter adding its contribution to a layer's output leaves that output as the layer returned it.
     */
    public static INDArray sum(Object owner, String name, INDArray a, INDArray b) {
        INDArray total = outputFor(owner, name, a.dataType(), a.shape());
        return call(owner, name, () -> new AddOp(a, b, total), total, a, b);
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
        Runnable kernel = reused.kernel(kernels, output, inputs);
        if (kernel != null) {
            kernel.run();
            return output;
        }
        for (int i = 0; i < inputs.length; i++) {
            reused.context.setInputArray(i, inputs[i]);
        }
        reused.context.setOutputArray(0, output);
        Nd4j.getExecutioner().exec((CustomOp) reused.op, reused.context);
        return output;
    }

    /**
     * {@link #exec} for one of ND4J's legacy ops (transforms such as {@code gelu}, which have no op
     * context): peft4j's kernel for it where the process has one, else {@code op} built anew and run
     * the plain way.
     */
    public INDArray execLegacy(Object owner, String name, Supplier<? extends Op> op, INDArray output, INDArray... inputs) {
        ReusedOp reused = ops.computeIfAbsent(new Key(Objects.requireNonNull(owner, "owner"), name),
                key -> new ReusedOp((DifferentialFunction) op.get(), null));
        Runnable kernel = reused.kernel(kernels, output, inputs);
        if (kernel != null) {
            kernel.run();
        } else {
            Nd4j.exec(op.get());
        }
        return output;
    }

    /**
     * Runs {@code op} in the {@link #current()} session if there is one (see {@link #exec}), else the
     * plain way: {@code op} builds the op with these very arrays, {@code output} among them, and ND4J
     * runs it once. For eager forwards that serve both.
     */
    public static INDArray call(Object owner, String name, Supplier<? extends CustomOp> op, INDArray output, INDArray... inputs) {
        EagerSession session = CURRENT.get();
        if (session != null) {
            return session.exec(owner, name, op, output, inputs);
        }
        Nd4j.exec(op.get());
        return output;
    }

    /**
     * {@link #call} for one of ND4J's legacy ops ({@link #execLegacy}): {@code op} builds the op on
     * {@code inputs} into {@code output}; without a current session it runs the plain way.
     */
    public static INDArray callLegacy(Object owner, String name, Supplier<? extends Op> op, INDArray output, INDArray... inputs) {
        EagerSession session = CURRENT.get();
        if (session != null) {
            return session.execLegacy(owner, name, op, output, inputs);
        }
        Nd4j.exec(op.get());
        return output;
    }

    private static ReusedOp prepare(CustomOp op) {
        OpContext context = Nd4j.getExecutioner().buildContext();
        context.setIArguments(op.iArgs());
        context.setTArguments(op.tArgs());
        context.setBArguments(op.bArgs());
        context.setDArguments(op.dArgs());
        return new ReusedOp((DifferentialFunction) op, context);
    }

    /** Ops and output arrays held now: one op (with its context, if it has one) per owner and name, outputs per owner, name and shape. */
    public int reusedCount() {
        return ops.size() + outputs.values().stream().flatMap(List::stream).mapToInt(slot -> slot.arrays.size()).sum();
    }

    /**
     * Ends the session: drops its op contexts and output arrays. (ND4J frees a context's native
     * memory when the context is collected; closing one explicitly is a no-op in 1.0.0-M2.1, and
     * freeing it here as well could free it twice.)
     */
    @Override
    public void close() {
        closed = true;
        ops.clear();
        outputs.clear();
        views.clear();
    }
}
