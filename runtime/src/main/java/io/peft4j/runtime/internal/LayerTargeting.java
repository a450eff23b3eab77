package io.peft4j.runtime.internal;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.method.ModelNode;
import io.peft4j.runtime.method.ModuleSelection;
import io.peft4j.runtime.method.TargetModules;
import io.peft4j.runtime.spi.WeightAccessor;
import io.peft4j.annotations.WeightLayout;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Set;
import java.util.stream.Collectors;

/**
 * Resolves a method config's layer names ({@link ModuleSelection}) against one model: the layers it
 * selects, each with its weight accessor, or an error that says which name failed and what the model has
 * instead. Shared by every method that adapts layers with one matrix weight (LoRA, IA³).
 */
public final class LayerTargeting {

    /** Output heads {@code all-linear} leaves out: PEFT's {@code lm_head} and sequence-classification heads, and {@code head}. */
    public static final Set<String> HEAD_NAMES = Set.of("lm_head", "score", "classifier", "head");

    /** One selected layer. */
    public record Target(ModelNode node, WeightAccessor<Object> accessor) {
    }

    private final String configName;
    private final String methodName;
    private final ModuleSelection selection;
    private final WeightLayout unannotatedLayout;
    private final List<ModelNode> modules;
    private final String modelName;

    private LayerTargeting(String configName, String methodName, ModuleSelection selection, WeightLayout unannotatedLayout,
                           List<ModelNode> modules, String modelName) {
        this.configName = configName;
        this.methodName = methodName;
        this.selection = selection;
        this.unannotatedLayout = unannotatedLayout;
        this.modules = modules;
        this.modelName = modelName;
    }

    /**
     * Resolves {@code selection} against the model's {@code nodes}; {@code alsoTrain} (trained whole) is never
     * a target. {@code configName} and {@code methodName} ({@code "LoraConfig"}, {@code "LoRA"}) appear in errors.
     */
    public static LayerTargeting of(String configName, String methodName, ModuleSelection selection, WeightLayout unannotatedLayout,
                                    List<ModelNode> nodes, List<String> alsoTrain, String modelName) {
        List<ModelNode> modules = nodes.stream().filter(node -> ModelWalker.isModule(node.value())).toList();
        return new LayerTargeting(configName, methodName, selection.withModulesToSave(alsoTrain), unannotatedLayout, modules, modelName);
    }

    /** Whether the config leaves the layer at {@code path} out ({@code exclude_modules}, {@code alsoTrain}), annotated or not. */
    public boolean excludes(String path) {
        return selection.judge(path) == ModuleSelection.Verdict.EXCLUDED;
    }

    /** The selected layers by path, in model order. */
    public Map<String, Target> targets() {
        ModuleSelection effective = selection.allLinear() ? selection.withTargets(linearLayers()) : selection;
        if (!selection.allLinear()) {
            requireEveryTargetMatches();
        }
        Map<String, Target> targets = new LinkedHashMap<>();
        for (ModelNode node : modules) {
            if (!effective.selects(node.path())) {
                continue;
            }
            Object layer = node.value();
            Optional<WeightAccessor<Object>> accessor = accessorOf(layer, unannotatedLayout);
            if (accessor.isEmpty()) {
                throw new PeftException(configName + " target_modules " + selection.describeTargets() + " selects '" + node.path() + "' ("
                        + layer.getClass().getName() + "), which " + methodName + " cannot adapt: " + whyNot(layer)
                        + "; name its linear layers instead, or leave it out with exclude(\"" + node.path() + "\")");
            }
            if (accessor.get() instanceof ReflectiveWeightAccessor reflective) {
                reflective.announce();
            }
            targets.put(node.path(), new Target(node, accessor.get()));
        }
        if (targets.isEmpty()) {
            throw new PeftException(configName + " target_modules " + selection.describeTargets() + " names layers of " + modelName
                    + ", but exclude_modules " + (selection.excludeRegex() != null ? "'" + selection.excludeRegex() + "'" : selection.excludeModules())
                    + ", layers_to_transform " + selection.layersToTransform() + (selection.layersPattern().isEmpty() ? ""
                    : " (layers_pattern " + selection.layersPattern() + ")") + " and alsoTrain " + selection.modulesToSave()
                    + " leave none of them; the layers it names are "
                    + modules.stream().map(ModelNode::path).filter(path -> ModuleSelection.of(selection.targetModules()).selects(path)
                            || selection.targetRegex() != null && !selection.allLinear() && path.matches(selection.targetRegex()))
                            .limit(12).toList()
                    + (selection.layersToTransform().isEmpty() ? "" : "; layers_to_transform counts, as PEFT does, the index after "
                    + "the first list name that follows another segment: 'encoder.layers.3.query' is in layer 3, a root-level "
                    + "'layers.3.query' has none (select those by regex)"));
        }
        return targets;
    }

    /** The generated accessor of the layer's class, else one that reads its weight by reflection; empty if it has no usable weight. */
    public static Optional<WeightAccessor<Object>> accessorOf(Object layer, WeightLayout unannotatedLayout) {
        Optional<WeightAccessor<Object>> generated = WeightAccessors.find(layer.getClass());
        return generated.isPresent() ? generated : Optional.ofNullable(ReflectiveWeightAccessor.of(layer, unannotatedLayout).accessor());
    }

    private static String whyNot(Object layer) {
        return ReflectiveWeightAccessor.of(layer, WeightLayout.IN_OUT).whyNot();
    }

    /**
     * PEFT's {@code all-linear}, in Java terms: every layer with a forward method and one matrix weight,
     * except embedding tables (a class whose name contains {@code Embedding}: Java has no common Linear
     * type to test for, as PEFT tests {@code nn.Linear}) and the output heads of {@link #HEAD_NAMES}.
     */
    private List<String> linearLayers() {
        List<String> linear = modules.stream()
                .filter(node -> !HEAD_NAMES.contains(lastSegment(node.path())))
                .filter(node -> !node.value().getClass().getSimpleName().contains("Embedding"))
                .filter(node -> accessorOf(node.value(), unannotatedLayout).isPresent())
                .map(ModelNode::path).toList();
        if (linear.isEmpty()) {
            throw new PeftException(configName + ".allLinear() found no linear layer in " + modelName + ": a layer needs a forward "
                    + "method and one matrix weight (SDVariable or INDArray of rank 2, or a @Weight field)");
        }
        return linear;
    }

    /** PEFT users lose hours to a misspelt target that silently matches nothing; here it is an error. */
    private void requireEveryTargetMatches() {
        if (selection.targetRegex() != null) {
            if (modules.stream().noneMatch(node -> node.path().matches(selection.targetRegex()))) {
                throw new PeftException(configName + " target_modules '" + selection.targetRegex() + "' (a regular expression, matched "
                        + "against whole layer paths) matches no layer of " + modelName + "; layer paths look like " + closest(selection.targetRegex()));
            }
            return;
        }
        for (String target : selection.targetModules()) {
            if (modules.stream().noneMatch(node -> TargetModules.matches(target, node.path()))) {
                throw new PeftException(configName + " target_modules entry '" + target + "' matches no layer of " + modelName
                        + " (an entry matches a layer path it equals or ends with '." + target + "'); the closest layer paths are "
                        + closest(target));
            }
        }
    }

    /** The five layer paths nearest to {@code name} by edit distance (to the whole path or its last segment). */
    private List<String> closest(String name) {
        return modules.stream()
                .sorted(Comparator.comparingInt((ModelNode node) -> Math.min(distance(name, node.path()),
                        distance(name, lastSegment(node.path())))))
                .map(ModelNode::path).limit(5).collect(Collectors.toList());
    }

    private static String lastSegment(String path) {
        return path.substring(path.lastIndexOf('.') + 1);
    }

    static int distance(String a, String b) {
        int[] previous = new int[b.length() + 1];
        int[] current = new int[b.length() + 1];
        for (int j = 0; j <= b.length(); j++) {
            previous[j] = j;
        }
        for (int i = 1; i <= a.length(); i++) {
            current[0] = i;
            for (int j = 1; j <= b.length(); j++) {
                int substitution = previous[j - 1] + (a.charAt(i - 1) == b.charAt(j - 1) ? 0 : 1);
                current[j] = Math.min(substitution, Math.min(previous[j], current[j - 1]) + 1);
            }
            int[] swap = previous;
            previous = current;
            current = swap;
        }
        return previous[b.length()];
    }
}
