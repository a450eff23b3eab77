package io.peft4j.runtime.prefix;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.internal.PrependSite;
import io.peft4j.runtime.method.AdapterGate;
import io.peft4j.runtime.method.AttachContext;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDIndex;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * One adapter's prefix tuning of a model's attention layers: key and value prefixes {@code [n, d]} in
 * front of the key and value projections' outputs.
 *
 * <p>Without projection the prefixes are trainable variables {@code <attention>.prefix_keys.<adapter>}
 * and {@code <attention>.prefix_values.<adapter>}. With projection (Li and Liang) they are the output
 * {@code [n, Σ(d_k + d_v)]} of one shared two-layer tanh MLP over a trainable embedding
 * {@code prefix_encoder.<adapter>.embedding [n, d]}, as in Hugging Face PEFT; {@link #prefixes()}
 * evaluates it, and {@link #useFixedPrefixes} replaces it by fixed prefixes (after loading, or for
 * inference). Column blocks of the joint prefix matrix follow PEFT: layer 0 keys, layer 0 values, layer
 * 1 keys, ...
 */
final class PrefixTuner {

    /** One adapted attention layer: its key and value projections and their sites. */
    record Attention(String path, PrefixSite keys, PrefixSite values) {
    }

    private final String adapterName;
    private final List<Attention> layers;
    private final int virtualTokens;
    private final boolean projection;
    private final SameDiff sameDiff;
    private final DataType dtype;
    private final AttachContext context;
    private final AdapterGate gate;
    private final Map<Attention, SDVariable[]> direct = new IdentityHashMap<>();
    private SDVariable embedding;
    private SDVariable[] mlp;
    private SDVariable encoded;
    private int graphUses;

    PrefixTuner(AttachContext context, List<Attention> layers, int virtualTokens, boolean projection, int projectionHidden,
                SameDiff sameDiff, DataType dtype) {
        if (virtualTokens < 0) {
            throw new PeftException("@PrefixTuning on " + layers.get(0).path() + ": virtualTokens must be positive, got " + virtualTokens);
        }
        this.adapterName = context.adapterName();
        this.context = context;
        this.layers = List.copyOf(layers);
        this.virtualTokens = virtualTokens;
        this.projection = projection && virtualTokens > 0;
        this.sameDiff = sameDiff;
        this.dtype = dtype;
        this.gate = new AdapterGate(sameDiff, context.variableName(sameDiff, "prefix_gate." + adapterName), dtype);
        Random random = context.random();
        if (virtualTokens > 0 && this.projection) {
            long width = layers.get(0).keys().width();
            long hidden = projectionHidden > 0 ? projectionHidden : width;
            String prefix = "prefix_encoder." + adapterName + ".";
            embedding = sameDiff.var(context.variableName(sameDiff, prefix + "embedding"),
                    Nd4j.randn(random, new long[] {virtualTokens, width}).castTo(dtype));
            mlp = new SDVariable[] {
                    sameDiff.var(context.variableName(sameDiff, prefix + "dense1.weight"), xavier(width, hidden, random)),
                    sameDiff.var(context.variableName(sameDiff, prefix + "dense1.bias"), Nd4j.zeros(dtype, hidden)),
                    sameDiff.var(context.variableName(sameDiff, prefix + "dense2.weight"), xavier(hidden, totalWidth(), random)),
                    sameDiff.var(context.variableName(sameDiff, prefix + "dense2.bias"), Nd4j.zeros(dtype, totalWidth()))};
        } else if (virtualTokens > 0) {
            for (Attention layer : layers) {
                direct.put(layer, new SDVariable[] {
                        sameDiff.var(context.variableName(sameDiff, layer.path() + ".prefix_keys." + adapterName),
                                Nd4j.randn(random, new long[] {virtualTokens, layer.keys().width()}).castTo(dtype)),
                        sameDiff.var(context.variableName(sameDiff, layer.path() + ".prefix_values." + adapterName),
                                Nd4j.randn(random, new long[] {virtualTokens, layer.values().width()}).castTo(dtype))});
            }
        }
    }

    private INDArray xavier(long in, long out, Random random) {
        double bound = Math.sqrt(6.0 / (in + out));
        return Nd4j.rand(random, in, out).castTo(dtype).muli(2 * bound).subi(bound);
    }

    /** Σ over layers of (key width + value width): the columns of the joint prefix matrix. */
    long totalWidth() {
        return layers.stream().mapToLong(layer -> layer.keys().width() + layer.values().width()).sum();
    }

    /** The rows one projection of one layer gets, for its site. */
    PrependSite.Rows rowsOf(Attention layer, boolean keys) {
        return new PrependSite.Rows() {
            @Override
            public SDVariable rows() {
                return prefixOf(layer, keys);
            }

            @Override
            public INDArray values() {
                return prefixValues(layer, keys);
            }

            @Override
            public SDVariable gate() {
                return gate.variable();
            }

            @Override
            public long count() {
                return virtualTokens;
            }

            @Override
            public void used() {
                graphUses++;
            }

            @Override
            public boolean active() {
                return gate.on();
            }
        };
    }

    private SDVariable prefixOf(Attention layer, boolean keys) {
        SDVariable[] fixed = direct.get(layer);
        if (fixed != null) {
            return fixed[keys ? 0 : 1];
        }
        if (encoded == null) {
            SDVariable hidden = sameDiff.math.tanh(embedding.mmul(mlp[0]).add(mlp[1]));
            encoded = hidden.mmul(mlp[2]).add(mlp[3]);
        }
        long start = columnOf(layer) + (keys ? 0 : layer.keys().width());
        long width = keys ? layer.keys().width() : layer.values().width();
        return encoded.get(SDIndex.all(), SDIndex.interval(start, start + width));
    }

    /**
     * As {@link #prefixOf}, evaluated now. With the projection MLP that is one pass of it per call;
     * {@link #useFixedPrefixes} (as for inference) makes it a lookup.
     */
    private INDArray prefixValues(Attention layer, boolean keys) {
        SDVariable[] fixed = direct.get(layer);
        if (fixed != null) {
            return fixed[keys ? 0 : 1].getArr();
        }
        long start = columnOf(layer) + (keys ? 0 : layer.keys().width());
        long width = keys ? layer.keys().width() : layer.values().width();
        return prefixes().get(NDArrayIndex.all(), NDArrayIndex.interval(start, start + width));
    }

    private long columnOf(Attention wanted) {
        long column = 0;
        for (Attention layer : layers) {
            if (layer == wanted) {
                return column;
            }
            column += layer.keys().width() + layer.values().width();
        }
        throw new IllegalArgumentException("not a layer of this prefix tuning: " + wanted.path());
    }

    /** The current prefixes of all layers as PEFT's {@code prompt_embeddings [n, Σ(d_k + d_v)]}. */
    INDArray prefixes() {
        if (virtualTokens == 0) {
            return Nd4j.create(dtype, 0, totalWidth());
        }
        if (projection && direct.isEmpty()) {
            INDArray hidden = Transforms.tanh(embedding.getArr().mmul(mlp[0].getArr()).addiRowVector(mlp[1].getArr()), false);
            return hidden.mmul(mlp[2].getArr()).addiRowVector(mlp[3].getArr());
        }
        List<INDArray> blocks = new ArrayList<>();
        for (Attention layer : layers) {
            blocks.add(direct.get(layer)[0].getArr());
            blocks.add(direct.get(layer)[1].getArr());
        }
        return Nd4j.hstack(blocks.toArray(new INDArray[0]));
    }

    /**
     * Makes the prefixes fixed values ({@code [n, Σ(d_k + d_v)]}), replacing the projection MLP for
     * graphs built from now on, as Li and Liang do for inference. Nothing may have been built yet with
     * the MLP if it is to be dropped.
     */
    void useFixedPrefixes(INDArray joint) {
        if (joint.rank() != 2 || joint.size(0) != virtualTokens || joint.size(1) != totalWidth()) {
            throw new PeftException("prefixes must be [" + virtualTokens + ", " + totalWidth() + "], got "
                    + java.util.Arrays.toString(joint.shape()));
        }
        if (projection && direct.isEmpty() && graphUses > 0) {
            throw new PeftException("The graph was built with the prefix projection MLP; load or fix the prefixes before "
                    + "building the graph");
        }
        long column = 0;
        for (Attention layer : layers) {
            INDArray keys = joint.get(NDArrayIndex.all(), NDArrayIndex.interval(column, column + layer.keys().width())).dup();
            column += layer.keys().width();
            INDArray values = joint.get(NDArrayIndex.all(), NDArrayIndex.interval(column, column + layer.values().width())).dup();
            column += layer.values().width();
            SDVariable[] existing = direct.get(layer);
            if (existing != null) {
                existing[0].getArr().assign(keys);
                existing[1].getArr().assign(values);
            } else {
                direct.put(layer, new SDVariable[] {
                        sameDiff.var(context.variableName(sameDiff, layer.path() + ".prefix_keys." + adapterName), keys.castTo(dtype)),
                        sameDiff.var(context.variableName(sameDiff, layer.path() + ".prefix_values." + adapterName), values.castTo(dtype))});
            }
        }
    }

    /** The trainable variables: the per-layer prefixes, or the projection's embedding and MLP. */
    List<String> variableNames() {
        List<String> names = new ArrayList<>();
        if (projection && direct.isEmpty()) {
            names.add(embedding.name());
            for (SDVariable parameter : mlp) {
                names.add(parameter.name());
            }
        }
        for (Attention layer : layers) {
            SDVariable[] pair = direct.get(layer);
            if (pair != null) {
                names.add(pair[0].name());
                names.add(pair[1].name());
            }
        }
        return names;
    }

    long parameterCount() {
        long count = 0;
        for (String name : variableNames()) {
            count += sameDiff.getVariable(name).getArr().length();
        }
        return count;
    }

    List<Attention> layers() {
        return layers;
    }

    int virtualTokens() {
        return virtualTokens;
    }

    boolean projection() {
        return projection;
    }

    int graphUses() {
        return graphUses;
    }

    void setActive(boolean active) {
        gate.setActive(active);
    }

    void setRemoved() {
        gate.remove();
    }

    /** Adds this adapter's rows to every key and value projection site. */
    void register() {
        for (Attention layer : layers) {
            layer.keys().add(adapterName, rowsOf(layer, true));
            layer.values().add(adapterName, rowsOf(layer, false));
        }
    }

    void unregister() {
        for (Attention layer : layers) {
            layer.keys().remove(adapterName);
            layer.values().remove(adapterName);
        }
    }
}
