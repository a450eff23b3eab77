package io.peft4j.runtime.lora;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.EagerSession;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import io.peft4j.runtime.bridge.ForwardExtension;
import io.peft4j.runtime.method.ForwardContext;
import io.peft4j.runtime.method.LayerSlots;
import io.peft4j.runtime.spi.LoraMerge;
import io.peft4j.runtime.spi.WeightAccessor;
import java.lang.ref.WeakReference;
import java.util.Arrays;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Every LoRA branch of one {@code PeftModel} on one layer instance: what the layer's forward call
 * returns becomes {@code y + Σ_k dropout_k(x) · A_k · B_k · s_k} over the adapters {@code k} whose
 * branch is on (Hugging Face PEFT's {@code LoraLayer} with its adapters).
 *
 * <p>Shapes: input {@code x [..., in]}, output {@code y [..., out]}; the branches work on
 * {@code x.reshape(-1, in)}. In a SameDiff graph every branch that exists when the graph is built joins
 * it, scaled by a graph constant, so switching adapters changes constants, not the graph. Eager
 * ({@code INDArray}) calls add the branches that are on at the time of the call.
 */
final class LoraSite implements ForwardExtension {

    private final WeakReference<Object> layer;
    private final Class<?> layerType;
    private final String path;
    private final WeightAccessor<Object> accessor;
    private final ForwardContext context;
    private final long in;
    private final long out;
    private final LayerSlots<LoraBranch> branches;

    private LoraSite(Object layer, String path, WeightAccessor<Object> accessor, ForwardContext context) {
        this.layer = new WeakReference<>(layer);
        this.layerType = layer.getClass();
        this.path = path;
        this.accessor = accessor;
        this.context = context;
        this.branches = new LayerSlots<>(path, "a LoRA branch", LoraBranch::adapterName);
        INDArray weight = LoraMerge.arrayOf(accessor.weight(layer), path + "." + accessor.weightName());
        if (weight.rank() != 2) {
            throw new PeftException("Layer '" + path + "': the @Weight must be a matrix, but it has shape " + Arrays.toString(weight.shape()));
        }
        this.in = accessor.layout() == WeightLayout.IN_OUT ? weight.size(0) : weight.size(1);
        this.out = accessor.layout() == WeightLayout.IN_OUT ? weight.size(1) : weight.size(0);
    }

    /** The site of {@code context}'s model on {@code layer}, registered now if it has none. */
    static LoraSite on(Object layer, String path, WeightAccessor<Object> accessor, ForwardContext context) {
        return ForwardDispatcher.extensionOf(layer, LoraSite.class, context.owner(), () -> new LoraSite(layer, path, accessor, context), path);
    }

    @Override
    public Object owner() {
        return context.owner();
    }

    String path() {
        return path;
    }

    Class<?> layerType() {
        return layerType;
    }

    long in() {
        return in;
    }

    long out() {
        return out;
    }

    WeightLayout layout() {
        return accessor.layout();
    }

    /** The layer's weight field now: an {@code SDVariable} or {@code INDArray}. */
    Object weight() {
        Object instance = layer.get();
        if (instance == null) {
            throw new PeftException("Layer '" + path + "' was garbage-collected: its model is no longer referenced");
        }
        return accessor.weight(instance);
    }

    String weightName() {
        return path + "." + accessor.weightName();
    }

    void add(LoraBranch branch) {
        branches.add(branch);
    }

    /** Removes {@code branch}; the site leaves the layer with its last branch. */
    void remove(LoraBranch branch) {
        if (branches.remove(branch)) {
            unregister();
        }
    }

    void unregisterIfEmpty() {
        if (branches.isEmpty()) {
            unregister();
        }
    }

    void unregister() {
        ForwardDispatcher.unregister(layer.get(), this);
    }

    private List<LoraBranch> snapshot() {
        return branches.snapshot();
    }

    @Override
    public Object afterForward(Object input, Object output) {
        if (input instanceof SDVariable x && output instanceof SDVariable y) {
            return afterGraphForward(x, y);
        }
        if (input instanceof INDArray x && output instanceof INDArray y) {
            return afterEagerForward(x, y);
        }
        throw new PeftException("Layer '" + path + "': its forward method took " + typeName(input) + " and returned "
                + typeName(output) + "; a LoRA layer's forward must map an SDVariable to an SDVariable or an INDArray to an INDArray");
    }

    private SDVariable afterGraphForward(SDVariable x, SDVariable y) {
        checkLastDimension("input", staticShape(x), in);
        checkLastDimension("output", staticShape(y), out);
        if (context.adaptersDisabled()) {
            return y;
        }
        boolean mixed = context.mixedBatch();
        SDVariable rows = null;
        SDVariable result = y;
        for (LoraBranch branch : snapshot()) {
            if (!branch.isGraph()) {
                throw new PeftException("Layer '" + path + "' holds an INDArray weight, so its LoRA branch is eager; "
                        + "its forward method cannot take SDVariables");
            }
            if (y.getSameDiff() != branch.sameDiff()) {
                throw new PeftException("Layer '" + path + "' built its output in a different SameDiff than the one "
                        + "holding its weight; build the graph in the SameDiff the model was created with");
            }
            if (branch.isMerged()) {
                branch.skippedWhileMerged();
                continue;
            }
            if (rows == null) {
                rows = x.reshape(-1, in);
            }
            SDVariable delta = branch.graphDelta(rows, mixed).reshape(y.shape());
            result = result.add(mixed ? delta.mul(context.rowMask(branch.adapterId(), y)) : delta);
        }
        return result;
    }

    private INDArray afterEagerForward(INDArray x, INDArray y) {
        checkLastDimension("input", x.shape(), in);
        checkLastDimension("output", y.shape(), out);
        if (context.adaptersDisabled()) {
            return y;
        }
        if (context.mixedBatch()) {
            throw new PeftException("Layer '" + path + "' computes eagerly (INDArray); mixed batches need a SameDiff graph");
        }
        // Rows as they come when they are rows already: an eager decoding step is bound by per-op cost,
        // and each reshape is a call into ND4J.
        INDArray rows = x.rank() == 2 ? x : x.reshape(-1, in);
        INDArray result = y;
        for (LoraBranch branch : snapshot()) {
            INDArray delta = branch.eagerDelta(rows);
            if (delta != null) {
                INDArray shaped = y.rank() == 2 ? delta : delta.reshape(y.shape());
                result = result == y ? EagerSession.sum(this, "y + delta", y, shaped) : result.addi(shaped);
            }
        }
        return result;
    }


    private static long[] staticShape(SDVariable variable) {
        try {
            return variable.getShape();
        } catch (RuntimeException unknownUntilExecution) {
            return null;
        }
    }

    private void checkLastDimension(String what, long[] shape, long expected) {
        if (shape == null || shape.length == 0) {
            return;
        }
        long last = shape[shape.length - 1];
        if (last >= 0 && last != expected) {
            WeightLayout layout = accessor.layout();
            throw new PeftException("LoRA layer '" + path + "' (" + layerType.getSimpleName() + ", weight "
                    + (layout == WeightLayout.IN_OUT ? "[" + in + ", " + out + "]" : "[" + out + ", " + in + "]") + " " + layout
                    + ") got an " + what + " of shape " + Arrays.toString(shape) + ": its last dimension must be " + expected
                    + (what.equals("input") ? " (the weight's input features)" : " (the weight's output features)")
                    + "; check the @Weight layout");
        }
    }

    private static String typeName(Object value) {
        return value == null ? "null" : value.getClass().getSimpleName();
    }
}
