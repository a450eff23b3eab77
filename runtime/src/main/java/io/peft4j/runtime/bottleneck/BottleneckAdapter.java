package io.peft4j.runtime.bottleneck;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.method.MethodState;
import io.peft4j.runtime.method.NamedMethodAdapter;
import io.peft4j.runtime.method.PeftMethod;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The bottleneck part of one named adapter: a module after each of its layers.
 *
 * <p>Saved under AdapterHub's key names ({@code <layer>.adapters.<adapter>.adapter_down.0.weight [b, d]},
 * {@code .adapter_down.0.bias [b]}, {@code .adapter_up.weight [d, b]}, {@code .adapter_up.bias [d]}) with
 * {@code peft_type BOTTLENECK}, which Hugging Face PEFT does not have, and a {@code layers} map of each
 * layer's {@code hidden_size}, {@code adapter_size} and {@code non_linearity}. Bottleneck adapters cannot
 * be merged.
 */
public final class BottleneckAdapter extends NamedMethodAdapter {

    private static final List<String> PARTS = List.of("adapter_down.0.weight", "adapter_down.0.bias", "adapter_up.weight", "adapter_up.bias");

    private final Map<String, BottleneckModule> modules;

    BottleneckAdapter(PeftMethod method, String adapterName, Map<String, BottleneckModule> modules) {
        super(method, adapterName);
        this.modules = new LinkedHashMap<>(modules);
    }

    /** The bottleneck part of adapter {@code name} of {@code peft}. */
    public static BottleneckAdapter of(PeftModel peft, String name) {
        return peft.adapter(name).requirePart(BottleneckAdapter.class, "bottleneck layers");
    }

    @Override
    public List<String> layers() {
        return List.copyOf(modules.keySet());
    }

    /** Every module, in model order (sizes are 0 until the graph is built or an adapter is loaded). */
    public List<BottleneckLayer> layerViews() {
        return modules.values().stream().map(BottleneckModule::view).toList();
    }

    @Override
    public List<String> variableNames() {
        return modules.values().stream().flatMap(module -> module.variableNames().stream()).toList();
    }

    @Override
    public long parameterCount() {
        return modules.values().stream().mapToLong(BottleneckModule::parameterCount).sum();
    }

    @Override
    public List<String> unwiredLayers() {
        return modules.values().stream().filter(module -> module.graphUses() == 0).map(module -> module.site().path()).toList();
    }

    @Override
    public void setActive(boolean active) {
        modules.values().forEach(module -> module.setActive(active));
    }

    @Override
    public void setTraining(boolean training) {
        // no training-only behaviour
    }

    @Override
    public void remove() {
        for (BottleneckModule module : modules.values()) {
            module.setRemoved();
            module.site().remove(module);
        }
    }

    @Override
    public void detach() {
        modules.values().forEach(module -> module.site().unregister());
    }

    @Override
    public boolean supportsMixedBatches() {
        return true;
    }

    @Override
    public MethodState state(CheckpointKeys keys) {
        ObjectNode config = JsonNodeFactory.instance.objectNode();
        ObjectNode layers = config.putObject("layers");
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        modules.forEach((path, module) -> {
            List<INDArray> parameters = module.parameters();
            if (parameters.isEmpty()) {
                throw new CheckpointException(java.nio.file.Path.of(adapterName()), "the bottleneck adapter of layer '" + path
                        + "' has no weights yet: build the graph (call the model's forward) before saving");
            }
            String key = keys.key(path, "adapters." + adapterName() + ".");
            tensors.put(key + PARTS.get(0), parameters.get(0).transpose());
            tensors.put(key + PARTS.get(1), parameters.get(1));
            tensors.put(key + PARTS.get(2), parameters.get(2).transpose());
            tensors.put(key + PARTS.get(3), parameters.get(3));
            ObjectNode layer = layers.putObject(keys.module(path));
            layer.put("architecture", "bottleneck");
            layer.put("hidden_size", module.hidden());
            layer.put("adapter_size", parameters.get(0).size(1));
            layer.put("reduction_factor", module.settings().reductionFactor());
            layer.put("non_linearity", module.settings().activation());
            layer.put("preset", module.settings().preset());
        });
        return new MethodState(tensors, config);
    }

    /** The adapter segment the file's keys use (AdapterHub puts the adapter's name in every key). */
    private String storedName(SavedAdapter saved, String module) {
        String prefix = CheckpointKeys.PREFIX + module + ".adapters.";
        for (String key : saved.tensors().keys()) {
            if (key.startsWith(prefix) && key.endsWith("." + PARTS.get(0))) {
                return key.substring(prefix.length(), key.length() - PARTS.get(0).length() - 1);
            }
        }
        return adapterName();
    }

    @Override
    public Runnable prepareLoad(SavedAdapter saved) {
        CheckpointKeys keys = saved.keys();
        Map<String, String> keyOf = new LinkedHashMap<>();
        List<String> expected = new ArrayList<>();
        for (String path : modules.keySet()) {
            String module = keys.module(path);
            String key = CheckpointKeys.PREFIX + module + ".adapters." + storedName(saved, module) + ".";
            keyOf.put(path, key);
            PARTS.forEach(part -> expected.add(key + part));
        }
        Map<String, INDArray> tensors = saved.tensors().requireExactly(expected,
                "the adapter was saved for a model with other @Adapter layers (or another layer name mapping)");
        JsonNode layersConfig = saved.config().path("layers");
        Map<BottleneckModule, INDArray[]> values = new LinkedHashMap<>();
        modules.forEach((path, module) -> {
            String key = keyOf.get(path);
            INDArray down = tensors.get(key + PARTS.get(0));
            if (down.rank() != 2) {
                throw new CheckpointException(saved.weightsFile(), "tensor '" + key + PARTS.get(0) + "' must be [b, d], got "
                        + java.util.Arrays.toString(down.shape()));
            }
            long bottleneck = down.size(0);
            long hidden = down.size(1);
            if (module.hidden() != 0 && module.hidden() != hidden) {
                throw new CheckpointException(saved.weightsFile(), "the bottleneck adapter of '" + path + "' was saved for width " + hidden
                        + ", but the layer's output has width " + module.hidden());
            }
            if (module.settings().bottleneck(hidden) != bottleneck) {
                throw new CheckpointException(saved.weightsFile(), "the bottleneck adapter of '" + path + "' has bottleneck " + bottleneck
                        + ", but adapter '" + adapterName() + "' has " + module.settings().bottleneck(hidden) + " there");
            }
            String where = "the bottleneck adapter of '" + path + "'";
            saved.tensors().requireShape(key + PARTS.get(1), tensors.get(key + PARTS.get(1)), new long[] {bottleneck}, where);
            saved.tensors().requireShape(key + PARTS.get(2), tensors.get(key + PARTS.get(2)), new long[] {hidden, bottleneck}, where);
            saved.tensors().requireShape(key + PARTS.get(3), tensors.get(key + PARTS.get(3)), new long[] {hidden}, where);
            JsonNode declared = layersConfig.path(keys.module(path));
            if (declared.has("non_linearity") && !declared.get("non_linearity").asText().equals(module.settings().activation())) {
                throw new CheckpointException(saved.configFile(), "gives '" + keys.module(path) + "' the activation "
                        + declared.get("non_linearity") + ", but adapter '" + adapterName() + "' uses " + module.settings().activation());
            }
            values.put(module, new INDArray[] {down.transpose(), tensors.get(key + PARTS.get(1)), tensors.get(key + PARTS.get(2)).transpose(),
                    tensors.get(key + PARTS.get(3))});
        });
        return () -> values.forEach((module, stored) -> {
            SameDiff graph = module.site().graph();
            DataType dtype = module.site().dtype();
            module.ensureCreated(graph, stored[0].size(0), dtype);
            List<INDArray> parameters = module.parameters();
            for (int i = 0; i < stored.length; i++) {
                parameters.get(i).assign(stored[i].castTo(parameters.get(i).dataType()));
            }
        });
    }
}
