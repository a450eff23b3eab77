package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import io.peft4j.runtime.bridge.ForwardExtension;
import io.peft4j.runtime.method.ForwardContext;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Puts trainable rows in front of a layer's output sequence {@code [batch, T, d]}, making it
 * {@code [batch, n + T, d]}: what prompt tuning does to an embedding and prefix tuning to key and value
 * projections.
 *
 * <p>Every adapter of one {@code PeftModel} that prepends rows to this layer has {@code n} rows
 * {@code [n, d]} and a gate (a graph constant, 1 while the adapter is on); the graph prepends
 * {@code Σ_k gate_k · rows_k}, so one graph serves every such adapter. The length {@code n} is part of
 * the graph, so all of them must have the same {@code n}. A graph built while none of them is on has no
 * extra positions (the base model's graph); a graph built while one is on keeps its {@code n} positions
 * when all are switched off (they then hold zeros, which is not the base model).
 *
 * <p>Eager calls (the forward method maps an {@code INDArray} to an {@code INDArray}, as in inference
 * without a graph) prepend {@code Σ rows_k} over the adapters on at the time of the call, and nothing
 * when none is on: the base model's output, unlike a graph built while one was on. An eager output may
 * also be one sequence {@code [T, d]}, which becomes {@code [n + T, d]}.
 */
public abstract class PrependSite implements ForwardExtension {

    /** One adapter's rows on this layer. */
    public interface Rows {

        /** The rows {@code [n, d]} as a graph value (built on first use). */
        SDVariable rows();

        /** The rows {@code [n, d]} as they are now, for an eager ({@code INDArray}) forward call. */
        INDArray values();

        /** The gate constant: 1 while the adapter is on, 0 while off. */
        SDVariable gate();

        /** n. */
        long count();

        /** Called each time the rows join a graph. */
        void used();

        /** Whether the adapter is on now. */
        boolean active();
    }

    private final WeakReference<Object> layer;
    private final String path;
    private final String method;
    private final ForwardContext context;
    private final long width;
    private final Map<String, Rows> rows = new LinkedHashMap<>();

    protected PrependSite(Object layer, String path, String method, ForwardContext context, long width) {
        this.layer = new WeakReference<>(layer);
        this.path = path;
        this.method = method;
        this.context = context;
        this.width = width;
    }

    /** Registers {@code site}'s kind on {@code layer} unless {@code context}'s model already has one there. */
    protected static <S extends PrependSite> S on(Object layer, Class<S> type, ForwardContext context, java.util.function.Supplier<S> create,
                                                 String path) {
        return ForwardDispatcher.extensionOf(layer, type, context.owner(), create, path);
    }

    @Override
    public Object owner() {
        return context.owner();
    }

    public String path() {
        return path;
    }

    public long width() {
        return width;
    }

    /** Adds {@code adapter}'s rows; all adapters of a layer must have the same number of rows. */
    public synchronized void add(String adapter, Rows added) {
        for (Map.Entry<String, Rows> existing : rows.entrySet()) {
            if (existing.getValue().count() != added.count()) {
                throw new PeftException(method + " on '" + path + "': adapter '" + adapter + "' has " + added.count()
                        + " virtual tokens and adapter '" + existing.getKey() + "' has " + existing.getValue().count()
                        + "; graphs hold one length, so every " + method + " adapter of a layer needs the same number");
            }
        }
        if (rows.putIfAbsent(adapter, added) != null) {
            throw new PeftException(method + " on '" + path + "' already has adapter '" + adapter + "'");
        }
    }

    public synchronized void remove(String adapter) {
        rows.remove(adapter);
        if (rows.isEmpty()) {
            unregister();
        }
    }

    /** Leaves the layer unless some adapter has rows here. */
    public synchronized void unregisterIfEmpty() {
        if (rows.isEmpty()) {
            unregister();
        }
    }

    public void unregister() {
        ForwardDispatcher.unregister(layer.get(), this);
    }

    private synchronized List<Rows> snapshot() {
        return new ArrayList<>(rows.values());
    }

    @Override
    public Object afterForward(Object input, Object output) {
        if (output instanceof INDArray sequence) {
            return afterEagerForward(sequence);
        }
        if (!(output instanceof SDVariable sequence)) {
            throw new PeftException("Layer '" + path + "' returned " + (output == null ? "null" : output.getClass().getSimpleName())
                    + "; " + method + " needs its forward method to return a sequence [batch, T, d], as an SDVariable or an INDArray");
        }
        List<Rows> entries = snapshot();
        if (context.adaptersDisabled() || entries.stream().noneMatch(Rows::active)) {
            return sequence;
        }
        if (context.mixedBatch()) {
            throw new PeftException(method + " on '" + path + "' changes the sequence length, so a mixed-batch graph cannot route "
                    + "rows to it; mixed batches serve LoRA and bottleneck adapters");
        }
        long count = entries.get(0).count();
        entries.forEach(Rows::used);
        if (count == 0) {
            return sequence;
        }
        SDVariable sum = null;
        for (Rows entry : entries) {
            SDVariable term = entry.rows().mul(entry.gate());
            sum = sum == null ? term : sum.add(term);
        }
        return SequencePrefix.prepend(sum, count, width, sequence);
    }

    private INDArray afterEagerForward(INDArray sequence) {
        if (sequence.rank() < 2 || sequence.rank() > 3 || sequence.size(sequence.rank() - 1) != width) {
            throw new PeftException(method + " on '" + path + "': the forward method returned shape " + Arrays.toString(sequence.shape())
                    + ", but rows of width " + width + " go in front of a sequence [batch, T, " + width + "] or [T, " + width + "]");
        }
        List<Rows> on = context.adaptersDisabled() ? List.of() : snapshot().stream().filter(Rows::active).toList();
        if (on.isEmpty() || on.get(0).count() == 0) {
            return sequence;
        }
        if (context.mixedBatch()) {
            throw new PeftException(method + " on '" + path + "' changes the sequence length, so a mixed batch cannot route rows to it; "
                    + "mixed batches serve LoRA and bottleneck adapters");
        }
        INDArray sum = on.get(0).values();
        for (int i = 1; i < on.size(); i++) {
            sum = sum.add(on.get(i).values());
        }
        return SequencePrefix.prepend(sum.castTo(sequence.dataType()), sequence);
    }
}
