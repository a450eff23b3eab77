package io.peft4j.runtime.lora;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.Combination;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.ConfigReader;
import io.peft4j.runtime.checkpoint.SafetensorsHeader;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.checkpoint.TensorInfo;
import io.peft4j.runtime.internal.ModelWalker;
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
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * LoRA (Hu et al., 2021) as Hugging Face PEFT implements it: {@code y = base(x) + dropout(x)·A·B·s},
 * {@code A [in, r]} kaiming-uniform, {@code B [r, out] = 0}, {@code s = alpha / r} ({@code alpha / √r}
 * with rsLoRA), mergeable into the weight. Declared with {@code @LoRA}; {@code peft_type} {@code LORA}.
 */
public final class LoraMethod implements PeftMethod {

    static final String A_SUFFIX = ".lora_A.weight";
    static final String B_SUFFIX = ".lora_B.weight";

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
        Map<String, LoraBranch> branches = new LinkedHashMap<>();
        try {
            for (ModelNode node : context.nodes()) {
                LoRA lora = context.annotationOf(node, LoRA.class);
                if (lora == null) {
                    continue;
                }
                WeightAccessor<Object> accessor = WeightAccessors.forLayer(node.value().getClass(), node.path(), "@LoRA");
                LoraSettings settings = LoraSettings.of(lora, "layer '" + node.path() + "'");
                branches.put(node.path(), branch(context, node, accessor, settings, null, null));
            }
        } catch (RuntimeException e) {
            branches.values().forEach(branch -> branch.site().remove(branch));
            throw e;
        }
        return branches.isEmpty() ? null : new LoraAdapter(this, context.adapterName(), branches, modulePaths(context));
    }

    /** A branch on {@code node}'s layer; refuses a rank above {@code min(in, out)}. */
    static LoraBranch branch(AttachContext context, ModelNode node, WeightAccessor<Object> accessor, LoraSettings settings,
                             INDArray initialA, INDArray initialB) {
        LoraSite site = LoraSite.on(node.value(), node.path(), accessor, context.forward());
        try {
            if (settings.rank() > Math.min(site.in(), site.out())) {
                throw new PeftException("@LoRA(rank = " + settings.rank() + ") on layer '" + node.path() + "' ("
                        + node.value().getClass().getSimpleName() + ", in = " + site.in() + ", out = " + site.out()
                        + "): rank must not exceed min(in, out) = " + Math.min(site.in(), site.out()) + "; choose a smaller rank");
            }
            LoraBranch branch = new LoraBranch(site, context, settings, initialA, initialB);
            site.add(branch);
            return branch;
        } catch (RuntimeException e) {
            site.unregisterIfEmpty();
            throw e;
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
                Optional<WeightAccessor<Object>> accessor = WeightAccessors.find(node.value().getClass());
                if (accessor.isEmpty()) {
                    continue;
                }
                String module = keys.module(node.path());
                candidates.add(module);
                if (config.targets(module)) {
                    branches.put(node.path(), branch(context, node, accessor.get(), config.settingsOf(module), null, null));
                }
            }
        } catch (RuntimeException e) {
            branches.values().forEach(branch -> branch.site().remove(branch));
            throw e;
        }
        if (branches.isEmpty()) {
            throw new CheckpointException(saved.configFile(), "target_modules " + config.describeTargets() + " selects no layer of "
                    + "the model; the layers LoRA can adapt (a class with a @Weight and a generated accessor) are " + candidates);
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
            String layer = layerOf(tensor.name(), A_SUFFIX);
            boolean isA = layer != null;
            layer = isA ? layer : layerOf(tensor.name(), B_SUFFIX);
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

    /** The layer of a {@code base_model.model.<layer><suffix>} key (an adapter segment before the last part allowed), or {@code null}. */
    private static String layerOf(String key, String suffix) {
        if (!key.startsWith(CheckpointKeys.PREFIX)) {
            return null;
        }
        String path = key.substring(CheckpointKeys.PREFIX.length());
        if (path.endsWith(suffix)) {
            return path.substring(0, path.length() - suffix.length());
        }
        String group = suffix.substring(0, suffix.lastIndexOf('.')); // ".lora_A"
        int groupAt = path.lastIndexOf(group + ".");
        if (groupAt > 0 && path.endsWith(".weight") && path.indexOf('.', groupAt + group.length() + 1) == path.length() - ".weight".length()) {
            return path.substring(0, groupAt);
        }
        return null;
    }

    @Override
    public Map<String, INDArray> effects(JsonNode config, Map<String, INDArray> tensors) {
        Map<String, INDArray> deltas = new LinkedHashMap<>();
        tensors.forEach((key, a) -> {
            String layer = layerOf(key, A_SUFFIX);
            if (layer == null) {
                return;
            }
            INDArray b = tensors.entrySet().stream().filter(entry -> layer.equals(layerOf(entry.getKey(), B_SUFFIX)))
                    .map(Map.Entry::getValue).findFirst().orElse(null);
            if (b != null && a.rank() == 2 && b.rank() == 2 && b.size(1) == a.size(0)) {
                double scale = LoraConfig.read(new ConfigReader(Path.of(AdapterCheckpoint.CONFIG_FILE), config), List.of()).scalingOf(layer);
                deltas.put(layer + " (s·B·A)", b.castTo(DataType.DOUBLE).mmul(a.castTo(DataType.DOUBLE)).muli(scale));
            }
        });
        return deltas;
    }
}
