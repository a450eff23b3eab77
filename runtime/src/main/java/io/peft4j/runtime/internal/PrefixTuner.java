package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
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

/**
 * Prefix tuning for every adapted attention layer of one model: key and value prefixes
 * {@code [n, d]} put in front of the key and value projections' outputs.
 *
 * <p>Without projection the prefixes are trainable variables {@code <attention>.prefix_keys} and
 * {@code <attention>.prefix_values}. With projection (Li and Liang) they are the output
 * {@code [n, Σ(d_k + d_v)]} of one shared two-layer tanh MLP over a trainable embedding
 * {@code prefix_encoder.embedding [n, d]}, as in Hugging Face PEFT; {@link #prefixes()} evaluates it, and
 * {@link #useFixedPrefixes} replaces it by fixed prefixes (after loading, or for inference).
 * Column blocks of the joint prefix matrix follow PEFT: layer 0 keys, layer 0 values, layer 1 keys, ...
 */
public final class PrefixTuner {

    /** One adapted attention layer: where its key and value projections are, and their widths. */
    public record Site(String path, Object keyLayer, Object valueLayer, long keyWidth, long valueWidth) {
    }

    private final List<Site> sites;
    private final int virtualTokens;
    private final boolean projection;
    private final SameDiff sameDiff;
    private final DataType dtype;
    private final Map<Site, SDVariable[]> direct = new IdentityHashMap<>();
    private final List<Extension> extensions = new ArrayList<>();
    private SDVariable embedding;
    private SDVariable[] mlp;
    private SDVariable encoded;
    private int graphUses;

    public PrefixTuner(List<Site> sites, int virtualTokens, boolean projection, int projectionHidden, SameDiff sameDiff,
                       DataType dtype, Random random) {
        if (virtualTokens < 0) {
            throw new PeftException("@PrefixTuning on " + sites.get(0).path() + ": virtualTokens must be positive, got " + virtualTokens);
        }
        this.sites = List.copyOf(sites);
        this.virtualTokens = virtualTokens;
        this.projection = projection && virtualTokens > 0;
        this.sameDiff = sameDiff;
        this.dtype = dtype;
        if (virtualTokens == 0) {
            return;
        }
        if (this.projection) {
            long width = sites.get(0).keyWidth();
            long hidden = projectionHidden > 0 ? projectionHidden : width;
            long total = totalWidth();
            embedding = sameDiff.var("prefix_encoder.embedding", Nd4j.randn(random, new long[] {virtualTokens, width}).castTo(dtype));
            mlp = new SDVariable[] {
                    sameDiff.var("prefix_encoder.dense1.weight", xavier(width, hidden, random)),
                    sameDiff.var("prefix_encoder.dense1.bias", Nd4j.zeros(dtype, hidden)),
                    sameDiff.var("prefix_encoder.dense2.weight", xavier(hidden, total, random)),
                    sameDiff.var("prefix_encoder.dense2.bias", Nd4j.zeros(dtype, total))};
        } else {
            for (Site site : sites) {
                direct.put(site, new SDVariable[] {
                        sameDiff.var(site.path() + ".prefix_keys", Nd4j.randn(random, new long[] {virtualTokens, site.keyWidth()}).castTo(dtype)),
                        sameDiff.var(site.path() + ".prefix_values", Nd4j.randn(random, new long[] {virtualTokens, site.valueWidth()}).castTo(dtype))});
            }
        }
    }

    private INDArray xavier(long in, long out, Random random) {
        double bound = Math.sqrt(6.0 / (in + out));
        return Nd4j.rand(random, in, out).castTo(dtype).muli(2 * bound).subi(bound);
    }

    /** Σ over layers of (key width + value width): the columns of the joint prefix matrix. */
    public long totalWidth() {
        return sites.stream().mapToLong(site -> site.keyWidth() + site.valueWidth()).sum();
    }

    private SDVariable prefixOf(Site site, boolean keys) {
        SDVariable[] fixed = direct.get(site);
        if (fixed != null) {
            return fixed[keys ? 0 : 1];
        }
        if (encoded == null) {
            SDVariable hidden = sameDiff.math.tanh(embedding.mmul(mlp[0]).add(mlp[1]));
            encoded = hidden.mmul(mlp[2]).add(mlp[3]);
        }
        long start = columnOf(site) + (keys ? 0 : site.keyWidth());
        long width = keys ? site.keyWidth() : site.valueWidth();
        return encoded.get(SDIndex.all(), SDIndex.interval(start, start + width));
    }

    private long columnOf(Site site) {
        long column = 0;
        for (Site other : sites) {
            if (other == site) {
                return column;
            }
            column += other.keyWidth() + other.valueWidth();
        }
        throw new IllegalArgumentException("not a site of this model: " + site.path());
    }

    /** The current prefixes of all layers as PEFT's {@code prompt_embeddings [n, Σ(d_k + d_v)]}. */
    public INDArray prefixes() {
        if (virtualTokens == 0) {
            return Nd4j.create(dtype, 0, totalWidth());
        }
        if (projection && direct.isEmpty()) {
            INDArray hidden = org.nd4j.linalg.ops.transforms.Transforms.tanh(
                    embedding.getArr().mmul(mlp[0].getArr()).addiRowVector(mlp[1].getArr()), false);
            return hidden.mmul(mlp[2].getArr()).addiRowVector(mlp[3].getArr());
        }
        List<INDArray> blocks = new ArrayList<>();
        for (Site site : sites) {
            blocks.add(direct.get(site)[0].getArr());
            blocks.add(direct.get(site)[1].getArr());
        }
        return Nd4j.hstack(blocks.toArray(new INDArray[0]));
    }

    /**
     * Makes the prefixes fixed values ({@code [n, Σ(d_k + d_v)]}), replacing the projection MLP for
     * graphs built from now on, as Li and Liang do for inference. Nothing may have been built yet with
     * the MLP if it is to be dropped.
     */
    public void useFixedPrefixes(INDArray joint) {
        if (joint.rank() != 2 || joint.size(0) != virtualTokens || joint.size(1) != totalWidth()) {
            throw new PeftException("prefixes must be [" + virtualTokens + ", " + totalWidth() + "], got "
                    + java.util.Arrays.toString(joint.shape()));
        }
        if (projection && direct.isEmpty() && graphUses > 0) {
            throw new PeftException("The graph was built with the prefix projection MLP; load or fix the prefixes before "
                    + "building the graph");
        }
        long column = 0;
        for (Site site : sites) {
            INDArray keys = joint.get(NDArrayIndex.all(), NDArrayIndex.interval(column, column + site.keyWidth())).dup();
            column += site.keyWidth();
            INDArray values = joint.get(NDArrayIndex.all(), NDArrayIndex.interval(column, column + site.valueWidth())).dup();
            column += site.valueWidth();
            SDVariable[] existing = direct.get(site);
            if (existing != null) {
                existing[0].getArr().assign(keys);
                existing[1].getArr().assign(values);
            } else {
                direct.put(site, new SDVariable[] {
                        sameDiff.var(site.path() + ".prefix_keys", keys.castTo(dtype)),
                        sameDiff.var(site.path() + ".prefix_values", values.castTo(dtype))});
            }
        }
    }

    /** The trainable variables: the per-layer prefixes, or the projection's embedding and MLP. */
    public List<String> variableNames() {
        List<String> names = new ArrayList<>();
        if (projection && direct.isEmpty()) {
            names.add(embedding.name());
            for (SDVariable parameter : mlp) {
                names.add(parameter.name());
            }
        }
        direct.values().forEach(pair -> {
            names.add(pair[0].name());
            names.add(pair[1].name());
        });
        return names;
    }

    public List<Site> sites() {
        return sites;
    }

    public int virtualTokens() {
        return virtualTokens;
    }

    public boolean projection() {
        return projection;
    }

    public SameDiff sameDiff() {
        return sameDiff;
    }

    /** How many key/value projection outputs received a prefix while graphs were built. */
    public int graphUses() {
        return graphUses;
    }

    /** Hooks every site's key and value projections. */
    public void register() {
        for (Site site : sites) {
            Extension keys = new Extension(site, true);
            Extension values = new Extension(site, false);
            ForwardDispatcher.register(site.keyLayer(), keys, site.path() + ".keys");
            extensions.add(keys);
            ForwardDispatcher.register(site.valueLayer(), values, site.path() + ".values");
            extensions.add(values);
        }
    }

    public void unregister() {
        for (Extension extension : extensions) {
            ForwardDispatcher.unregister(extension.keys ? extension.site.keyLayer() : extension.site.valueLayer(), extension);
        }
        extensions.clear();
    }

    /** Prepends one layer's key or value prefix to its projection's output. */
    private final class Extension implements ForwardExtension {
        private final Site site;
        private final boolean keys;

        Extension(Site site, boolean keys) {
            this.site = site;
            this.keys = keys;
        }

        @Override
        public Object afterForward(Object input, Object output) {
            if (!(output instanceof SDVariable sequence)) {
                throw new PeftException("The " + (keys ? "key" : "value") + " projection of '" + site.path()
                        + "' must return an SDVariable [batch, T, d] for prefix tuning");
            }
            graphUses++;
            if (virtualTokens == 0) {
                return sequence;
            }
            return SequencePrefix.prepend(prefixOf(site, keys), virtualTokens, keys ? site.keyWidth() : site.valueWidth(), sequence);
        }
    }
}
