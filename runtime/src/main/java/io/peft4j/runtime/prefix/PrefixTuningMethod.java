package io.peft4j.runtime.prefix;

import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.internal.WeightAccessors;
import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.MethodAdapter;
import io.peft4j.runtime.method.ModelNode;
import io.peft4j.runtime.method.PeftMethod;
import io.peft4j.runtime.spi.LoraMerge;
import io.peft4j.runtime.spi.WeightAccessor;
import java.lang.annotation.Annotation;
import java.util.ArrayList;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;

/**
 * Prefix tuning (Li and Liang, 2021): trainable key and value prefixes in every adapted attention layer.
 * Declared with {@code @PrefixTuning} on attention layers; {@code peft_type PREFIX_TUNING}. A model has
 * one prefix configuration per adapter (length, projection).
 */
public final class PrefixTuningMethod implements PeftMethod {

    @Override
    public String name() {
        return "prefix_tuning";
    }

    @Override
    public Class<? extends Annotation> annotation() {
        return PrefixTuning.class;
    }

    @Override
    public String peftType() {
        return "PREFIX_TUNING";
    }

    @Override
    public MethodAdapter attach(AttachContext context) {
        List<ModelNode> annotated = new ArrayList<>();
        List<PrefixTuning> settings = new ArrayList<>();
        for (ModelNode node : context.nodes()) {
            PrefixTuning prefix = context.annotationOf(node, PrefixTuning.class);
            if (prefix != null) {
                annotated.add(node);
                settings.add(prefix);
            }
        }
        if (annotated.isEmpty()) {
            return null;
        }
        PrefixTuning first = settings.get(0);
        for (int i = 1; i < settings.size(); i++) {
            PrefixTuning other = settings.get(i);
            if (other.virtualTokens() != first.virtualTokens() || other.projection() != first.projection()
                    || other.projectionHidden() != first.projectionHidden()) {
                throw new PeftException("@PrefixTuning on '" + annotated.get(i).path() + "' differs from the one on '"
                        + annotated.get(0).path() + "': a model has one prefix configuration (virtualTokens, projection)");
            }
        }
        List<String[]> fields = settings.stream().map(prefix -> new String[] {prefix.keys(), prefix.values()}).toList();
        int n = context.virtualTokens() != null ? context.virtualTokens() : first.virtualTokens();
        return create(context, annotated, fields, n, first.projection(), first.projectionHidden());
    }

    private PrefixTuningAdapter create(AttachContext context, List<ModelNode> attention, List<String[]> fields, int virtualTokens,
                                       boolean projection, int projectionHidden) {
        List<PrefixTuner.Attention> layers = new ArrayList<>();
        List<PrefixSite> sites = new ArrayList<>();
        try {
            return create(context, attention, fields, virtualTokens, projection, projectionHidden, layers, sites);
        } catch (RuntimeException e) {
            sites.forEach(PrefixSite::unregisterIfEmpty);
            throw e;
        }
    }

    private PrefixTuningAdapter create(AttachContext context, List<ModelNode> attention, List<String[]> fields, int virtualTokens,
                                       boolean projection, int projectionHidden, List<PrefixTuner.Attention> layers,
                                       List<PrefixSite> sites) {
        SDVariable anyKeyWeight = null;
        for (int i = 0; i < attention.size(); i++) {
            ModelNode node = attention.get(i);
            Object keys = projection(node, fields.get(i)[0]);
            Object values = projection(node, fields.get(i)[1]);
            SDVariable keyWeight = weightOf(keys, node.path() + "." + fields.get(i)[0]);
            anyKeyWeight = anyKeyWeight == null ? keyWeight : anyKeyWeight;
            String keyPath = node.path() + "." + fields.get(i)[0];
            String valuePath = node.path() + "." + fields.get(i)[1];
            sites.add(PrefixSite.on(keys, keyPath, context.forward(), outputWidth(keys, keyPath)));
            sites.add(PrefixSite.on(values, valuePath, context.forward(), outputWidth(values, valuePath)));
            layers.add(new PrefixTuner.Attention(node.path(), sites.get(sites.size() - 2), sites.get(sites.size() - 1)));
        }
        PrefixTuner tuner = new PrefixTuner(context, layers, virtualTokens, projection, projectionHidden, anyKeyWeight.getSameDiff(),
                anyKeyWeight.dataType());
        try {
            tuner.register();
        } catch (RuntimeException e) {
            tuner.unregister();
            throw e;
        }
        return new PrefixTuningAdapter(this, context.adapterName(), tuner);
    }

    /** The key or value projection layer held by field {@code field} of the attention layer at {@code node}. */
    private static Object projection(ModelNode node, String field) {
        for (Class<?> type = node.value().getClass(); type != null; type = type.getSuperclass()) {
            try {
                java.lang.reflect.Field declared = type.getDeclaredField(field);
                declared.setAccessible(true);
                Object layer = declared.get(node.value());
                if (layer == null) {
                    throw new PeftException("@PrefixTuning on '" + node.path() + "': field '" + field + "' is null");
                }
                return layer;
            } catch (NoSuchFieldException notHere) {
                // look in the superclass
            } catch (IllegalAccessException e) {
                throw new PeftException("@PrefixTuning on '" + node.path() + "': cannot read field '" + field + "': " + e, e);
            }
        }
        throw new PeftException("@PrefixTuning on '" + node.path() + "' (" + node.value().getClass().getName()
                + "): it has no field '" + field + "'; name the key and value projection fields with keys = / values =");
    }

    private static SDVariable weightOf(Object layer, String path) {
        WeightAccessor<Object> accessor = WeightAccessors.forLayer(layer.getClass(), path, "@PrefixTuning");
        if (!(accessor.weight(layer) instanceof SDVariable weight)) {
            throw new PeftException("@PrefixTuning needs SameDiff layers, but the weight of '" + path + "' is not an SDVariable");
        }
        return weight;
    }

    private static long outputWidth(Object layer, String path) {
        WeightAccessor<Object> accessor = WeightAccessors.forLayer(layer.getClass(), path, "@PrefixTuning");
        var weight = LoraMerge.arrayOf(accessor.weight(layer), path + "." + accessor.weightName());
        return accessor.layout() == WeightLayout.IN_OUT ? weight.size(1) : weight.size(0);
    }

    @Override
    public MethodAdapter restore(AttachContext context, SavedAdapter saved) {
        int n = saved.reader().positiveInt("num_virtual_tokens");
        List<String> named = saved.reader().strings("peft4j_layers");
        List<ModelNode> attention = new ArrayList<>();
        List<String[]> fields = new ArrayList<>();
        for (ModelNode node : context.nodes()) {
            PrefixTuning annotation = context.annotationOf(node, PrefixTuning.class);
            boolean selected = named.isEmpty() ? annotation != null : named.contains(saved.keys().module(node.path()));
            if (selected) {
                attention.add(node);
                fields.add(annotation != null ? new String[] {annotation.keys(), annotation.values()} : new String[] {"key", "value"});
            }
        }
        if (attention.isEmpty() || (!named.isEmpty() && attention.size() != named.size())) {
            throw new CheckpointException(saved.configFile(), named.isEmpty()
                    ? "has no peft4j_layers, and no layer of the model carries @PrefixTuning"
                    : "names the attention layers " + named + ", of which the model has "
                    + attention.stream().map(node -> saved.keys().module(node.path())).toList());
        }
        int layers = saved.reader().positiveInt("num_layers", attention.size());
        if (layers != attention.size()) {
            throw new CheckpointException(saved.configFile(), "says num_layers = " + layers + ", but " + attention.size()
                    + " attention layers of the model are prefix-tuned");
        }
        return create(context, attention, fields, n, false, 0);
    }
}
