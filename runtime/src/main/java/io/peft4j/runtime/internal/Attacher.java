package io.peft4j.runtime.internal;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftMethod;
import io.peft4j.runtime.spi.LoraMerge;
import io.peft4j.runtime.spi.WeightAccessor;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Finds the annotated layers of a model and creates and registers their extensions: LoRA branches,
 * bottleneck adapters, prompts and prefixes. All or nothing: if one layer fails, every extension
 * registered so far is removed again.
 */
public final class Attacher {

    /**
     * What {@code PeftModel.Builder} chose.
     *
     * @param seed            the seed of every initialisation
     * @param alsoTrain       field paths whose variables stay trainable
     * @param methods         the methods whose annotations are active
     * @param virtualTokens   overrides the annotations' n for prompts and prefixes, or {@code null}
     * @param promptTokenizer text to token ids, for {@code PromptInit.TEXT}, or {@code null}
     */
    public record Options(long seed, List<String> alsoTrain, Set<PeftMethod> methods, Integer virtualTokens,
                          Function<String, int[]> promptTokenizer) {
    }

    private Attacher() {
    }

public static Attachment attach(Object root, Options options) {
        AgentStatus.requireInstalled("attach LoRA to " + root.getClass().getName());
        List<ModelWalker.Node> nodes = ModelWalker.walk(root);
        Map<String, LoraBranch> branches = new LinkedHashMap<>();
        Map<String, WeightAccessor<Object>> accessors = new LinkedHashMap<>();
        Map<String, BottleneckAdapter> adapters = new LinkedHashMap<>();
        Map<String, PromptEmbedding> prompts = new LinkedHashMap<>();
        List<PrefixTuner.Site> sites = new ArrayList<>();
        List<PrefixTuning> prefixSettings = new ArrayList<>();
        PrefixTuner prefixes = null;
        org.nd4j.linalg.api.rng.Random random = Nd4j.getRandomFactory().getNewRandomInstance(options.seed());
        try {
            for (ModelWalker.Node node : nodes) {
                LoRA lora = options.methods().contains(PeftMethod.LORA) ? annotationOf(node, LoRA.class) : null;
                if (lora != null) {
                    @SuppressWarnings("unchecked")
                    WeightAccessor<Object> accessor =
                            (WeightAccessor<Object>) WeightAccessors.forLayer(node.value().getClass(), node.path());
                    LoraSettings settings = LoraSettings.of(lora, "layer '" + node.path() + "'");
                    LoraBranch branch = new LoraBranch(node.path(), node.value(), accessor.weight(node.value()),
                            accessor.layout(), settings, random);
                    branch.register();
                    branches.put(node.path(), branch);
                    accessors.put(node.path(), accessor);
                }
                Adapter adapter = options.methods().contains(PeftMethod.ADAPTER) ? annotationOf(node, Adapter.class) : null;
                if (adapter != null) {
                    BottleneckAdapter bottleneck = new BottleneckAdapter(node.path(), node.value(),
                            AdapterSettings.of(adapter, "layer '" + node.path() + "'"), random);
                    bottleneck.register();
                    adapters.put(node.path(), bottleneck);
                }
                PromptTuning prompt = options.methods().contains(PeftMethod.PROMPT_TUNING) ? annotationOf(node, PromptTuning.class) : null;
                if (prompt != null) {
                    WeightAccessor<Object> table = accessorOf(node.value(), node.path(), "@PromptTuning");
                    PromptEmbedding embedding = new PromptEmbedding(node.path(), node.value(), table.weight(node.value()),
                            options.virtualTokens() != null ? options.virtualTokens() : prompt.virtualTokens(), prompt.init(), prompt.text(),
                            options.promptTokenizer(), random);
                    embedding.register();
                    prompts.put(node.path(), embedding);
                }
                PrefixTuning prefix = options.methods().contains(PeftMethod.PREFIX_TUNING) ? annotationOf(node, PrefixTuning.class) : null;
                if (prefix != null) {
                    sites.add(prefixSite(node, prefix));
                    prefixSettings.add(prefix);
                }
            }
            if (!sites.isEmpty()) {
                PrefixTuning first = prefixSettings.get(0);
                for (int i = 1; i < prefixSettings.size(); i++) {
                    PrefixTuning other = prefixSettings.get(i);
                    if (other.virtualTokens() != first.virtualTokens() || other.projection() != first.projection()
                            || other.projectionHidden() != first.projectionHidden()) {
                        throw new PeftException("@PrefixTuning on '" + sites.get(i).path() + "' differs from the one on '"
                                + sites.get(0).path() + "': a model has one prefix configuration (virtualTokens, projection)");
                    }
                }
                SDVariable keyWeight = (SDVariable) accessorOf(sites.get(0).keyLayer(), sites.get(0).path(), "@PrefixTuning")
                        .weight(sites.get(0).keyLayer());
                prefixes = new PrefixTuner(sites, options.virtualTokens() != null ? options.virtualTokens() : first.virtualTokens(),
                        first.projection(), first.projectionHidden(), keyWeight.getSameDiff(), keyWeight.dataType(), random);
                prefixes.register();
            }
        } catch (RuntimeException e) {
            branches.values().forEach(LoraBranch::unregister);
            adapters.values().forEach(BottleneckAdapter::unregister);
            prompts.values().forEach(PromptEmbedding::unregister);
            if (prefixes != null) {
                prefixes.unregister();
            }
            throw e;
        }
        if (branches.isEmpty() && adapters.isEmpty() && prompts.isEmpty() && prefixes == null) {
            throw new PeftException("No layer reachable from " + root.getClass().getName() + " is annotated with "
                    + options.methods().stream().map(PeftMethod::annotation)
                    .collect(java.util.stream.Collectors.joining(" or "))
                    + ": annotate a layer class (e.g. @LoRA(rank = 8) public final class Linear) or a layer field "
                    + "(e.g. @LoRA(rank = 8) final Linear query) of the model");
        }
        Set<SameDiff> graphs = Collections.newSetFromMap(new IdentityHashMap<>());
        nodes.stream().filter(node -> node.value() instanceof SDVariable)
                .forEach(node -> graphs.add(((SDVariable) node.value()).getSameDiff()));
        branches.values().stream().filter(LoraBranch::isGraph).forEach(branch -> graphs.add(branch.sameDiff()));
        long eagerBase = graphs.isEmpty() ? nodes.stream().filter(node -> node.value() instanceof INDArray)
                .mapToLong(node -> ((INDArray) node.value()).length()).sum() : 0;
        return new Attachment(branches, accessors, adapters, prompts, prefixes, variablesUnder(nodes, options.alsoTrain()),
                graphs, eagerBase);
    }

    @SuppressWarnings("unchecked")
    private static WeightAccessor<Object> accessorOf(Object layer, String path, String annotation) {
        return (WeightAccessor<Object>) WeightAccessors.forLayer(layer.getClass(), path, annotation);
    }

    /** The key and value projections of an attention layer, found by the field names {@code @PrefixTuning} gives. */
    private static PrefixTuner.Site prefixSite(ModelWalker.Node node, PrefixTuning prefix) {
        Object keys = projection(node, prefix.keys());
        Object values = projection(node, prefix.values());
        return new PrefixTuner.Site(node.path(), keys, values, outputWidth(keys, node.path() + "." + prefix.keys()),
                outputWidth(values, node.path() + "." + prefix.values()));
    }

    private static Object projection(ModelWalker.Node node, String field) {
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

    private static long outputWidth(Object layer, String path) {
        WeightAccessor<Object> accessor = accessorOf(layer, path, "@PrefixTuning");
        INDArray weight = LoraMerge.arrayOf(accessor.weight(layer), path + "." + accessor.weightName());
        return accessor.layout() == io.peft4j.annotations.WeightLayout.IN_OUT ? weight.size(1) : weight.size(0);
    }

    private static <A extends java.lang.annotation.Annotation> A annotationOf(ModelWalker.Node node, Class<A> type) {
        A onField = node.field() == null ? null : node.field().getAnnotation(type);
        return onField != null ? onField : node.value().getClass().getAnnotation(type);
    }

    private static Set<String> variablesUnder(List<ModelWalker.Node> nodes, List<String> paths) {
        Set<String> names = new HashSet<>();
        for (String path : paths) {
            boolean found = false;
            for (ModelWalker.Node node : nodes) {
                boolean under = node.path().equals(path) || node.path().startsWith(path + ".");
                found |= node.path().equals(path);
                if (under && node.value() instanceof SDVariable variable) {
                    names.add(variable.name());
                }
            }
            if (!found) {
                throw new PeftException("alsoTrain(\"" + path + "\"): no field path '" + path + "' in the model");
            }
        }
        return names;
    }
}
