package io.peft4j.samples.gpt;

import io.peft4j.runtime.EagerInference;
import io.peft4j.runtime.EagerSession;
import io.peft4j.runtime.KeyValueCache;
import java.util.ArrayList;
import java.util.List;
import java.util.function.Supplier;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Key/value-cached decoding of one sequence without a graph: each token runs the model's layers as
 * eager ND4J ops ({@link GptModel#decode(org.nd4j.linalg.api.ndarray.INDArray,
 * org.nd4j.linalg.api.ndarray.INDArray, List)}), so a step costs its ops and not SameDiff's per-op
 * executor overhead, which leaves the graph step ({@link DecoderSession}) only 1.3–1.7× faster than
 * recomputing the whole sequence.
 *
 * <p>The adapters apply as the {@code PeftModel} has them when a token is fed (the agent routes the
 * eager forward calls as it does graph building): LoRA unmerged or merged, prefix and prompt tuning,
 * bottleneck adapters. Switch adapters between sequences, not within one: the cache holds what the
 * earlier tokens saw. The caches are arrays of {@code [n + prompt + context, d]} per layer, allocated
 * once; each step runs in {@link EagerInference}'s reused memory.
 *
 * <p>A decoder is an {@link EagerSession} for one sequence at a time: its layers' ops reuse their
 * native contexts from step to step, and {@link #reset} keeps them, with the caches' arrays, for the
 * next sequence.
 */
public final class EagerDecoder {
    private final GptModel model;
    private final List<KeyValueCache> caches = new ArrayList<>();
    private final EagerSession session;
    private int positions;

    /** A decoder with room for the model's context window after the prompt. */
    public EagerDecoder(GptModel model) {
        this(model, new EagerSession());
    }

    /**
     * A decoder whose ops are called the plain way, each building its native context anew (what every
     * step did before sessions; for comparison).
     */
    public static EagerDecoder withPlainOpCalls(GptModel model) {
        return new EagerDecoder(model, null);
    }

    private EagerDecoder(GptModel model, EagerSession session) {
        this.model = model;
        this.session = session;
        for (int i = 0; i < model.config().layers(); i++) {
            caches.add(new KeyValueCache(model.config().context()));
        }
    }

    /**
     * Feeds {@code tokens} (the prompt on the first call, then what follows) and returns the logits
     * {@code [vocab]} of the position after the last of them.
     */
    public float[] feed(int... tokens) {
        if (tokens.length == 0) {
            throw new IllegalArgumentException("feed at least one token");
        }
        if (positions + tokens.length > model.config().context()) {
            throw new IllegalArgumentException("the context window is " + model.config().context() + " positions; " + positions
                    + " are fed and " + tokens.length + " more would not fit");
        }
        int[] at = new int[tokens.length];
        for (int i = 0; i < at.length; i++) {
            at[i] = positions + i;
        }
        Supplier<INDArray> step = () -> model.decode(ids("token ids", tokens), ids("positions", at), caches);
        INDArray logits = session != null ? session.run(step) : EagerInference.run(step);
        positions += tokens.length;
        return values(logits);
    }

    /**
     * The elements of {@code row}: read from its buffer where they lie one after another, since
     * {@code toFloatVector} copies the array first (an allocation and a native call every step).
     */
    private static float[] values(INDArray row) {
        return row.elementWiseStride() == 1 ? row.data().getFloatsAt(row.offset(), (int) row.length()) : row.toFloatVector();
    }

    /** {@code values} as INT32 {@code [n]}, in the same array every step of the session ({@link EagerSession#outputFor}). */
    private INDArray ids(String name, int[] values) {
        INDArray ids = EagerSession.outputFor(this, name, DataType.INT32, values.length);
        for (int i = 0; i < values.length; i++) {
            ids.putScalar(i, values[i]);
        }
        return ids;
    }

    /**
     * Starts a new sequence: the next {@link #feed} is its prompt. The session's op contexts, kernels
     * and output arrays and the caches' arrays stay: a new decoder binds and allocates them again, and
     * its prompt and first step took 4.5 ms against 2.0 for a reset one (BENCHMARKS.md, change 32).
     */
    public void reset() {
        caches.forEach(KeyValueCache::clear);
        positions = 0;
    }

    /** Token positions fed so far (prefixes and virtual tokens not counted). */
    public int positions() {
        return positions;
    }

    /** Cached positions per layer, prefixes and virtual tokens included. */
    public long cachedPositions() {
        return caches.get(0).length();
    }
}
