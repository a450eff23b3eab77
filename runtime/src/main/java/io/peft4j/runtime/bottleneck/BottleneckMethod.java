package io.peft4j.runtime.bottleneck;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.annotations.Adapter;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.internal.ModelWalker;
import io.peft4j.runtime.method.AttachContext;
import io.peft4j.runtime.method.MethodAdapter;
import io.peft4j.runtime.method.ModelNode;
import io.peft4j.runtime.method.PeftMethod;
import java.lang.annotation.Annotation;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;

/**
 * Bottleneck adapters (Houlsby et al. 2019, Pfeiffer et al. 2021) after a layer:
 * {@code h + up(act(down(h)))}, {@code up} zero so the model starts as the base. Declared with
 * {@code @Adapter}; {@code peft_type} {@code BOTTLENECK} (AdapterHub's method, which Hugging Face PEFT
 * does not have). Not mergeable.
 */
public final class BottleneckMethod implements PeftMethod {

    @Override
    public String name() {
        return "bottleneck";
    }

    @Override
    public Class<? extends Annotation> annotation() {
        return Adapter.class;
    }

    @Override
    public String peftType() {
        return "BOTTLENECK";
    }

    @Override
    public MethodAdapter attach(AttachContext context) {
        Map<String, BottleneckModule> modules = new LinkedHashMap<>();
        try {
            for (ModelNode node : context.nodes()) {
                Adapter adapter = context.annotationOf(node, Adapter.class);
                if (adapter != null) {
                    BottleneckSettings settings = BottleneckSettings.of(adapter, "layer '" + node.path() + "'");
                    modules.put(node.path(), module(context, node, settings));
                }
            }
        } catch (RuntimeException e) {
            modules.values().forEach(module -> module.site().remove(module));
            throw e;
        }
        return modules.isEmpty() ? null : new BottleneckAdapter(this, context.adapterName(), modules);
    }

    private static BottleneckModule module(AttachContext context, ModelNode node, BottleneckSettings settings) {
        BottleneckSite site = BottleneckSite.on(node.value(), node.path(), context.forward(), floatingVariableOf(node.value()));
        BottleneckModule module = new BottleneckModule(site, context, settings);
        site.add(module);
        return module;
    }

    private static SDVariable floatingVariableOf(Object layer) {
        for (ModelNode inside : ModelWalker.walk(layer)) {
            if (inside.value() instanceof SDVariable variable && variable.dataType().isFPType()) {
                return variable;
            }
        }
        return null;
    }

    @Override
    public MethodAdapter restore(AttachContext context, SavedAdapter saved) {
        JsonNode layers = saved.config().path("layers");
        if (!layers.isObject() || layers.size() == 0) {
            throw saved.reader().configError("has no 'layers' map: a BOTTLENECK config lists each adapted layer's sizes");
        }
        CheckpointKeys keys = saved.keys();
        Map<String, BottleneckModule> modules = new LinkedHashMap<>();
        List<String> found = new ArrayList<>();
        try {
            for (ModelNode node : context.nodes()) {
                JsonNode layer = layers.get(keys.module(node.path()));
                if (layer == null || !ModelWalker.isModule(node.value())) {
                    continue;
                }
                found.add(keys.module(node.path()));
                String where = "layers." + keys.module(node.path());
                int size = saved.reader().positiveInt(where + ".adapter_size", layer.path("adapter_size"));
                String activation = layer.path("non_linearity").asText("relu").toLowerCase(Locale.ROOT);
                if (!BottleneckSettings.ACTIVATIONS.contains(activation)) {
                    throw saved.reader().configError("'" + where + ".non_linearity' is '" + activation + "'; peft4j knows "
                            + BottleneckSettings.ACTIVATIONS);
                }
                int reduction = layer.has("reduction_factor") ? saved.reader().positiveInt(where + ".reduction_factor",
                        layer.get("reduction_factor")) : 16;
                BottleneckSettings settings = new BottleneckSettings(layer.path("preset").asText("PFEIFFER"), reduction, size, activation);
                BottleneckModule module = module(context, node, settings);
                modules.put(node.path(), module);
                long hidden = saved.reader().positiveInt(where + ".hidden_size", layer.path("hidden_size"));
                module.ensureCreated(module.site().graph(), hidden, module.site().dtype());
            }
        } catch (RuntimeException e) {
            modules.values().forEach(module -> module.site().remove(module));
            throw e;
        }
        List<String> missing = new ArrayList<>();
        layers.fieldNames().forEachRemaining(name -> {
            if (!found.contains(name)) {
                missing.add(name);
            }
        });
        if (!missing.isEmpty()) {
            modules.values().forEach(module -> module.site().remove(module));
            throw new CheckpointException(saved.configFile(), "names layers " + missing + " that the model does not have");
        }
        return new BottleneckAdapter(this, context.adapterName(), modules);
    }
}
