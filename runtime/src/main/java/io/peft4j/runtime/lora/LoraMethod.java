package io.peft4j.runtime.lora;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.Combination;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.RawTensor;
import io.peft4j.runtime.checkpoint.SafetensorsHeader;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.checkpoint.TensorInfo;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.internal.LayerTargeting;
import io.peft4j.runtime.internal.ModelWalker;
import io.peft4j.runtime.internal.ReflectiveWeightAccessor;
import io.peft4j.runtime.internal.WeightAccessors;
import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.LayerSummary;
import io.peft4j.runtime.method.MethodAdapter;
import io.peft4j.runtime.method.ModelNode;
import io.peft4j.runtime.method.PeftMethod;
import io.peft4j.runtime.spi.WeightAccessor;
import java.lang.annotation.Annotation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.function.Function;

/**
 * LoRA (Hu et al., 2021) as Hugging Face PEFT implements it: {@code y = base(x) + dropout(x)·A·B·s},
 * {@code A [in, r]} kaiming-uniform, {@code B [r, out] = 0}, {@code s = alpha / r} ({@code alpha / √r}
 * with rsLoRA), mergeable into the weight; with DoRA ({@code use_dora}) and PEFT's other
 * initialisations ({@code init_lora_weights}: gaussian, PiSSA, OLoRA). Declared with {@code @LoRA};
 * {@code peft_type} {@code LORA}.
 */
public final class LoraMethod implements PeftMethod {

    @Override
    public String name() {
        return "lora";
    }

    @Override
    public Class<? extends Annotation> annotation() {
        return LoRA.class;
    }

    @Override
    public String peftType() {
        return "LORA";
    }

    @Override
    public MethodAdapter attach(AttachContext context) {
        LoraConfig config = context.config(LoraConfig.class);
        LayerTargeting byName = config == null ? null : LayerTargeting.of("LoraConfig", "LoRA", config.selection(),
                config.layoutOfUnannotatedWeights(), context.nodes(), context.alsoTrain(), "the model");
        Map<String, LayerTargeting.Target> named = byName == null ? Map.of() : byName.targets();
        Map<String, LoraBranch> branches = new LinkedHashMap<>();
        try {
            for (ModelNode node : context.nodes()) {
                LayerTargeting.Target target = named.get(node.path());
                if (target != null) {
                    branches.put(node.path(), branch(context, node, target.accessor(), config.settingsOf(node.path()), "LoraConfig"));
                    continue;
                }
                LoRA lora = context.annotationOf(node, LoRA.class);
                if (lora == null || byName != null && byName.excludes(node.path())) {
                    continue;
                }
                WeightAccessor<Object> accessor = WeightAccessors.forLayer(node.value().getClass(), node.path(), "@LoRA");
                LoraSettings settings = LoraSettings.of(lora, "layer '" + node.path() + "'");
                branches.put(node.path(), branch(context, node, accessor, settings, "@LoRA(rank = " + settings.rank() + ")"));
            }
            requireOneSettingPerAdapter(branches, "use_dora", branch -> branch.settings().dora() ? "DoRA" : "plain LoRA",
                    "set @LoRA(dora = true) on all of them or none");
            requireOneSettingPerAdapter(branches, "init_lora_weights", branch -> "init " + branch.settings().init(),
                    "give them one @LoRA(init = ...)");
        } catch (RuntimeException e) {
            rollBack(branches);
            throw e;
        }
        return branches.isEmpty() ? null : new LoraAdapter(this, context.adapterName(), branches, modulePaths(context));
    }

    /**
     * A branch on {@code node}'s layer. A new one ({@code declaredBy} names where its rank came from) refuses a rank
     * above {@code min(in, out)}, which only adds parameters; a saved adapter ({@code declaredBy} null) may have one,
     * as PEFT allows (its PiSSA-to-LoRA conversion doubles the rank).
     */
    static LoraBranch branch(AttachContext context, ModelNode node, WeightAccessor<Object> accessor, LoraSettings settings,
                             String declaredBy) {
        LoraSite site = LoraSite.on(node.value(), node.path(), accessor, context.forward());
        try {
            if (declaredBy != null && settings.rank() > Math.min(site.in(), site.out())) {
                throw new PeftException(declaredBy + " gives layer '" + node.path() + "' rank " + settings.rank() + " ("
                        + node.value().getClass().getSimpleName() + ", in = " + site.in() + ", out = " + site.out()
                        + "): rank must not exceed min(in, out) = " + Math.min(site.in(), site.out()) + "; choose a smaller rank");
            }
            LoraBranch branch = new LoraBranch(site, context, settings);
            site.add(branch);
            return branch;
        } catch (RuntimeException e) {
            site.unregisterIfEmpty();
            throw e;
        }
    }

    /** Takes created branches off their layers and gives back what PiSSA or OLoRA took out of the base weights. */
    private static void rollBack(Map<String, LoraBranch> branches) {
        branches.values().forEach(branch -> {
            branch.site().remove(branch);
            branch.undoInitialisation();
        });
    }

    /**
     * PEFT's config has one {@code use_dora} and one {@code init_lora_weights} per adapter (and re-runs a PiSSA or
     * OLoRA initialisation on every layer when it loads one), so an adapter's layers must agree on them.
     */
    private static void requireOneSettingPerAdapter(Map<String, LoraBranch> branches, String key, Function<LoraBranch, String> setting,
                                                    String fix) {
        Map<String, List<String>> layersBySetting = new LinkedHashMap<>();
        branches.forEach((path, branch) -> layersBySetting.computeIfAbsent(setting.apply(branch), value -> new ArrayList<>()).add(path));
        if (layersBySetting.size() > 1) {
            StringBuilder groups = new StringBuilder();
            layersBySetting.forEach((value, layers) -> groups.append(groups.length() == 0 ? "" : ", ").append(value).append(" on ").append(layers));
            throw new PeftException("One adapter cannot mix " + String.join(" and ", layersBySetting.keySet()) + " layers (PEFT saves one "
                    + key + " per adapter): " + groups + "; " + fix + ", or put them in two named adapters");
        }
    }

    static List<String> modulePaths(AttachContext context) {
        return context.nodes().stream().filter(node -> ModelWalker.isModule(node.value())).map(ModelNode::path).toList();
    }

    @Override
    public MethodAdapter restore(AttachContext context, SavedAdapter saved) {
        LoraConfig config = LoraConfig.read(saved);
        CheckpointKeys keys = saved.keys();
        Map<String, LoraBranch> branches = new LinkedHashMap<>();
        List<String> candidates = new ArrayList<>();
        try {
            for (ModelNode node : context.nodes()) {
                if (!ModelWalker.isModule(node.value())) {
                    continue;
                }
                Optional<WeightAccessor<Object>> accessor = LayerTargeting.accessorOf(node.value(), WeightLayout.IN_OUT);
                if (accessor.isEmpty()) {
                    continue;
                }
                String module = keys.module(node.path());
                candidates.add(module);
                if (config.targets(module)) {
                    if (accessor.get() instanceof ReflectiveWeightAccessor reflective) {
                        reflective.announce();
                    }
                    branches.put(node.path(), branch(context, node, accessor.get(), config.settingsOf(module), null));
                }
            }
        } catch (RuntimeException e) {
            rollBack(branches);
            throw e;
        }
        if (branches.isEmpty()) {
            throw new CheckpointException(saved.configFile(), "target_modules " + config.selection().describeTargets() + " selects no layer of "
                    + "the model; the layers LoRA can adapt (a forward method and one matrix weight) are " + candidates);
        }
        return new LoraAdapter(this, context.adapterName(), branches, modulePaths(context));
    }

    @Override
    public Combined combine(AttachContext context, List<MethodAdapter> sources, List<Double> weights, Combination combination,
                            int svdRank) {
        List<LoraAdapter> loras = sources.stream().map(LoraAdapter.class::cast).toList();
        return new LoraCombiner(this, context, loras, weights, combination, svdRank).combine();
    }

    @Override
    public List<LayerSummary> summarize(JsonNode config, SafetensorsHeader header) {
        Map<String, TensorInfo[]> layers = new LinkedHashMap<>();
        List<LayerSummary> rows = new ArrayList<>();
        for (TensorInfo tensor : header.tensors()) {
            String layer = LoraDelta.layerOf(tensor.name(), LoraDelta.A_SUFFIX);
            boolean isA = layer != null;
            layer = isA ? layer : LoraDelta.layerOf(tensor.name(), LoraDelta.B_SUFFIX);
            if (layer == null) {
                rows.addAll(LayerSummary.eachTensor(new SafetensorsHeader(List.of(tensor), Map.of(), 0, 0)));
            } else {
                layers.computeIfAbsent(layer, key -> new TensorInfo[2])[isA ? 0 : 1] = tensor;
            }
        }
        List<LayerSummary> loraRows = new ArrayList<>();
        layers.forEach((layer, pair) -> {
            TensorInfo a = pair[0];
            TensorInfo b = pair[1];
            String details = String.format("rank %s  in %s  out %s  %s  lora_A %s  lora_B %s", a == null ? "?" : a.shape()[0],
                    a == null ? "?" : a.shape()[1], b == null ? "?" : b.shape()[0], (a != null ? a : b).dtype(),
                    a == null ? "missing" : Arrays.toString(a.shape()), b == null ? "missing" : Arrays.toString(b.shape()));
            loraRows.add(new LayerSummary(layer, details, (a == null ? 0 : a.elements()) + (b == null ? 0 : b.elements())));
        });
        loraRows.addAll(rows);
        return loraRows;
    }


    @Override
    public Map<String, RawTensor> effects(JsonNode config, Map<String, RawTensor> tensors) {
        Map<String, RawTensor> deltas = new LinkedHashMap<>();
        LoraDelta.ofAdapter(Path.of(AdapterCheckpoint.CONFIG_FILE), config, tensors).forEach((layer, delta) -> deltas.put(layer + " (s·B·A)", delta));
        return deltas;
    }
}
