package io.peft4j.runtime.bottleneck;

import io.peft4j.runtime.EagerSession;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import io.peft4j.runtime.bridge.ForwardExtension;
import io.peft4j.runtime.internal.OutputWidth;
import io.peft4j.runtime.method.ForwardContext;
import java.lang.ref.WeakReference;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Every bottleneck module of one {@code PeftModel} after one layer instance, applied in turn to the
 * layer's output {@code h [..., d]}: {@code h ← h + g_k · up_k(act_k(down_k(h)))}.
 *
 * <p>In a graph every module joins with its gate as a constant; an eager call ({@code INDArray} in and
 * out, as in inference without a graph) applies the modules on at the time of the call.
 */
final class BottleneckSite implements ForwardExtension {

    /** After whatever changes the layer's own computation (LoRA). */
    static final int ORDER = 100;

    private final WeakReference<Object> layer;
    private final String path;
    private final ForwardContext context;
    private final SDVariable anyVariable;
    private final Map<String, BottleneckModule> modules = new LinkedHashMap<>();

    private BottleneckSite(Object layer, String path, ForwardContext context, SDVariable anyVariable) {
        this.layer = new WeakReference<>(layer);
        this.path = path;
        this.context = context;
        this.anyVariable = anyVariable;
    }

    /**
     * The site of {@code context}'s model after {@code layer}, registered now if it has none;
     * {@code anyVariable} is one of the layer's floating-point variables, or {@code null}.
     */
    static BottleneckSite on(Object layer, String path, ForwardContext context, SDVariable anyVariable) {
        return ForwardDispatcher.extensionOf(layer, BottleneckSite.class, context.owner(),
                () -> new BottleneckSite(layer, path, context, anyVariable), path);
    }

    /** The graph the layer's variables live in, where a loaded module is created before any forward call. */
    SameDiff graph() {
        if (anyVariable == null) {
            throw new PeftException("Layer '" + path + "' holds no SameDiff variable, so a bottleneck adapter cannot be created for it "
                    + "before its forward method runs: build the graph first, then load");
        }
        return anyVariable.getSameDiff();
    }

    DataType dtype() {
        return anyVariable == null ? DataType.FLOAT : anyVariable.dataType();
    }

    @Override
    public Object owner() {
        return context.owner();
    }

    @Override
    public int order() {
        return ORDER;
    }

    String path() {
        return path;
    }

    synchronized void add(BottleneckModule module) {
        if (modules.containsKey(module.adapterName())) {
            throw new PeftException("Layer '" + path + "' already has a bottleneck adapter of adapter '" + module.adapterName() + "'");
        }
        modules.put(module.adapterName(), module);
    }

    synchronized void remove(BottleneckModule module) {
        modules.remove(module.adapterName(), module);
        if (modules.isEmpty()) {
            unregister();
        }
    }

    void unregister() {
        ForwardDispatcher.unregister(layer.get(), this);
    }

    private synchronized List<BottleneckModule> snapshot() {
        return new ArrayList<>(modules.values());
    }

    @Override
    public Object afterForward(Object input, Object output) {
        if (output instanceof INDArray h) {
            return afterEagerForward(h);
        }
        if (!(output instanceof SDVariable h)) {
            throw new PeftException("Layer '" + path + "' returned " + (output == null ? "null" : output.getClass().getSimpleName())
                    + "; a bottleneck adapter follows a layer whose forward method returns an SDVariable or an INDArray");
        }
        if (context.adaptersDisabled()) {
            return h;
        }
        long width = OutputWidth.of(h).orElseThrow(() -> new PeftException("Cannot size the bottleneck adapter of layer '" + path
                + "': the width of its output cannot be read off the graph (it is not a matrix product with a weight, or "
                + "element-wise ops on one); end the layer's forward method with such an op, or give its output a static shape"));
        boolean mixed = context.mixedBatch();
        SDVariable result = h;
        for (BottleneckModule module : snapshot()) {
            SDVariable delta = module.graphDelta(result, width, mixed);
            result = result.add(mixed ? delta.mul(context.rowMask(module.adapterId(), result)) : delta);
        }
        return result;
    }

    private INDArray afterEagerForward(INDArray h) {
        if (context.adaptersDisabled()) {
            return h;
        }
        if (context.mixedBatch()) {
            throw new PeftException("Layer '" + path + "' computes eagerly (INDArray); mixed batches need a SameDiff graph");
        }
        INDArray result = h;
        for (BottleneckModule module : snapshot()) {
            INDArray delta = module.eagerDelta(result);
            if (delta != null) {
                result = result == h ? EagerSession.sum(this, "h + delta", h, delta) : result.addi(delta);
            }
        }
        return result;
    }
}
