package io.peft4j.runtime.ia3;

import io.peft4j.annotations.WeightLayout;
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
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Every (IA)³ vector of one {@code PeftModel} on one layer instance: with the adapters' input vectors
 * {@code l_i} and output vectors {@code l_o} (each the product over the adapters that are on, as PEFT
 * multiplies them) the layer computes PEFT's {@code base(x ⊙ l_i) ⊙ l_o} for input {@code x [..., in]}.
 *
 * <p>Under the agent the input is rescaled on entry to the forward method ({@link #beforeForward}), as
 * PEFT does. A layer woven by hand that reports only its output gets the same result from
 * {@code y + (x ⊙ (l_i − 1))·W} (exact for a layer that is {@code x·W} plus a bias), at the price of one
 * more product with the weight.
 */
final class Ia3Site implements ForwardExtension {

    private final WeakReference<Object> layer;
    private final Class<?> layerType;
    private final String path;
    private final WeightAccessor<Object> accessor;
    private final ForwardContext context;
    private final long in;
    private final long out;
    private final LayerSlots<Ia3Vector> vectors;
    /** The input {@link #beforeForward} returned on this thread, so that {@link #afterForward} does not rescale it again. */
    private final ThreadLocal<Object> rescaledInput = new ThreadLocal<>();

    private Ia3Site(Object layer, String path, WeightAccessor<Object> accessor, ForwardContext context) {
        this.layer = new WeakReference<>(layer);
        this.layerType = layer.getClass();
        this.path = path;
        this.accessor = accessor;
        this.context = context;
        this.vectors = new LayerSlots<>(path, "an (IA)³ vector", Ia3Vector::adapterName);
        INDArray weight = LoraMerge.arrayOf(accessor.weight(layer), path + "." + accessor.weightName());
        if (weight.rank() != 2) {
            throw new PeftException("Layer '" + path + "': (IA)³ needs a matrix weight, but " + accessor.weightName() + " has shape "
                    + Arrays.toString(weight.shape()));
        }
        this.in = accessor.layout() == WeightLayout.IN_OUT ? weight.size(0) : weight.size(1);
        this.out = accessor.layout() == WeightLayout.IN_OUT ? weight.size(1) : weight.size(0);
    }

    static Ia3Site on(Object layer, String path, WeightAccessor<Object> accessor, ForwardContext context) {
        return ForwardDispatcher.extensionOf(layer, Ia3Site.class, context.owner(), () -> new Ia3Site(layer, path, accessor, context), path);
    }

    @Override
    public Object owner() {
        return context.owner();
    }

    String path() {
        return path;
    }

    long in() {
        return in;
    }

    long out() {
        return out;
    }

    DataType dtype() {
        DataType type = weightArray().dataType();
        return type.isFPType() ? type : DataType.FLOAT;
    }

    Object weight() {
        return accessor.weight(instance());
    }

    INDArray weightArray() {
        return LoraMerge.arrayOf(weight(), path + "." + accessor.weightName());
    }

    private Object instance() {
        Object instance = layer.get();
        if (instance == null) {
            throw new PeftException("Layer '" + path + "' was garbage-collected: its model is no longer referenced");
        }
        return instance;
    }

    void add(Ia3Vector vector) {
        vectors.add(vector);
    }

    void remove(Ia3Vector vector) {
        if (vectors.remove(vector)) {
            unregister();
        }
    }

    void unregisterIfEmpty() {
        if (vectors.isEmpty()) {
            unregister();
        }
    }

    void unregister() {
        ForwardDispatcher.unregister(layer.get(), this);
    }

    private List<Ia3Vector> snapshot() {
        return vectors.snapshot();
    }

    @Override
    public Object beforeForward(Object input) {
        rescaledInput.remove();
        if (context.adaptersDisabled() || context.mixedBatch()) {
            return input;
        }
        Object result = input;
        if (input instanceof SDVariable x) {
            SDVariable scale = graphScale(true);
            result = scale == null ? x : x.mul(scale);
        } else if (input instanceof INDArray x) {
            INDArray scale = eagerScale(true);
            result = scale == null ? x : x.reshape(-1, in).mulRowVector(scale).reshape(x.shape());
        }
        if (result != input) {
            rescaledInput.set(result);
        }
        return result;
    }

    @Override
    public Object afterForward(Object input, Object output) {
        boolean inputRescaled = input != null && rescaledInput.get() == input;
        rescaledInput.remove();
        if (context.adaptersDisabled()) {
            return output;
        }
        if (context.mixedBatch()) {
            throw new PeftException("Layer '" + path + "' has (IA)³ vectors, which mixed batches do not route yet; "
                    + "run one adapter per batch with setAdapter");
        }
        if (input instanceof SDVariable x && output instanceof SDVariable y) {
            return afterGraphForward(inputRescaled ? null : x, y);
        }
        if (input instanceof INDArray x && output instanceof INDArray y) {
            return afterEagerForward(inputRescaled ? null : x, y);
        }
        throw new PeftException("Layer '" + path + "': its forward method took " + typeName(input) + " and returned " + typeName(output)
                + "; an (IA)³ layer's forward must map an SDVariable to an SDVariable or an INDArray to an INDArray");
    }

    /** The product of the graph scales of the input ({@code feedforward}) or output vectors, or null if there are none. */
    private SDVariable graphScale(boolean feedforward) {
        SDVariable product = null;
        for (Ia3Vector vector : snapshot()) {
            if (!vector.isGraph()) {
                throw new PeftException("Layer '" + path + "' holds an INDArray weight, so its (IA)³ vector is eager; "
                        + "its forward method cannot take SDVariables");
            }
            if (vector.merged() || vector.feedforward() != feedforward) {
                continue;
            }
            SDVariable scale = vector.graphScale();
            product = product == null ? scale : product.mul(scale);
        }
        return product;
    }

    /** The product of the eager vectors that are on, of the input ({@code feedforward}) or the output, or null if none is. */
    private INDArray eagerScale(boolean feedforward) {
        INDArray product = null;
        for (Ia3Vector vector : snapshot()) {
            INDArray scale = vector.feedforward() == feedforward ? vector.eagerScale() : null;
            if (scale != null) {
                product = product == null ? scale.dup() : product.mul(scale);
            }
        }
        return product;
    }

    /** {@code x} is null when the input was already rescaled on entry. */
    private SDVariable afterGraphForward(SDVariable x, SDVariable y) {
        SDVariable result = y;
        SDVariable inputScale = x == null ? null : graphScale(true);
        if (inputScale != null) {
            SDVariable rows = x.reshape(-1, in).mul(inputScale.sub(1.0));
            SDVariable weight = (SDVariable) weight();
            SDVariable change = accessor.layout() == WeightLayout.IN_OUT ? rows.mmul(weight)
                    : y.getSameDiff().mmul(rows, weight, false, true, false);
            result = result.add(change.reshape(y.shape()));
        }
        SDVariable outputScale = graphScale(false);
        return outputScale == null ? result : result.mul(outputScale);
    }

    private INDArray afterEagerForward(INDArray x, INDArray y) {
        INDArray result = y;
        INDArray inputScale = x == null ? null : eagerScale(true);
        if (inputScale != null) {
            INDArray rows = x.reshape(-1, in).mulRowVector(inputScale.sub(1.0));
            INDArray weight = weightArray();
            INDArray change = rows.mmul(accessor.layout() == WeightLayout.IN_OUT ? weight : weight.transpose());
            result = y.add(change.reshape(y.shape()));
        }
        INDArray outputScale = eagerScale(false);
        if (outputScale != null) {
            INDArray rows = (result == y ? y.dup() : result).reshape(-1, out);
            result = rows.muliRowVector(outputScale).reshape(y.shape());
        }
        return result;
    }

    /**
     * Folds {@code vector} into the weight (its input rows for a feed-forward vector, its output columns
     * otherwise) and an output vector also into the layer's bias, as PEFT's {@code IA3Layer.merge} does.
     * {@code divide} undoes it.
     */
    void fold(Ia3Vector vector, boolean divide) {
        INDArray l = vector.array();
        if (divide && l.eq(0).any()) {
            throw new PeftException("Cannot unmerge (IA)³ adapter '" + vector.adapterName() + "' from layer '" + path
                    + "': its vector has zeros, which merging erased from the weight");
        }
        INDArray weight = weightArray();
        boolean scalesRows = vector.feedforward() == (accessor.layout() == WeightLayout.IN_OUT);
        INDArray bias = vector.feedforward() ? null : Ia3Bias.of(instance(), path, accessor.weightName(), out);
        INDArray newWeight = scaled(weight, l, scalesRows, divide);
        INDArray newBias = bias == null ? null : scaled(bias.reshape(1, out), l, false, divide);
        if (newWeight.isNaN().any() || newWeight.isInfinite().any() || newBias != null && (newBias.isNaN().any() || newBias.isInfinite().any())) {
            throw new PeftException("Refusing to " + (divide ? "unmerge" : "merge") + " (IA)³ adapter '" + vector.adapterName()
                    + "' into layer '" + path + "': the result contains NaN or Inf; the weights were left unchanged");
        }
        weight.assign(newWeight);
        if (newBias != null) {
            bias.assign(newBias.reshape(bias.shape()));
        }
    }

    private static INDArray scaled(INDArray matrix, INDArray l, boolean scalesRows, boolean divide) {
        DataType compute = matrix.dataType() == DataType.DOUBLE ? DataType.DOUBLE : DataType.FLOAT;
        INDArray result = matrix.castTo(compute).dup();
        INDArray factors = l.castTo(compute);
        if (scalesRows) {
            INDArray column = factors.reshape(factors.length(), 1);
            result = divide ? result.diviColumnVector(column) : result.muliColumnVector(column);
        } else {
            result = divide ? result.diviRowVector(factors) : result.muliRowVector(factors);
        }
        return result.castTo(matrix.dataType());
    }

    private static String typeName(Object value) {
        return value == null ? "null" : value.getClass().getSimpleName();
    }

    Class<?> layerType() {
        return layerType;
    }
}
