package io.peft4j.runtime.internal;

import io.peft4j.annotations.Weight;
import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.method.ModelNode;
import io.peft4j.runtime.method.TargetModules;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Trained extra modules (Hugging Face PEFT's {@code modules_to_save}, peft4j's {@code alsoTrain}):
 * a new classifier head, say, trained with an adapter and saved with it.
 *
 * <p>As in PEFT, every adapter has its own copy of such a module. The graph has one set of variables,
 * so the copies are values: the variables hold the copy of the first active adapter that has one (the
 * base values when none does, or when adapters are disabled), and switching adapters stores the
 * outgoing copy and loads the incoming one. Switching costs one copy of the module's parameters.
 *
 * <p>Weights of {@code @Weight(layout = IN_OUT)} fields are saved as PyTorch's {@code nn.Linear}
 * stores them, {@code [out, in]}, so that PEFT loads the head into the same module of the Python model.
 */
public final class ModulesToSave {

    /** One tensor of a trained extra module. */
    private record Entry(String module, String relative, SDVariable variable, boolean transposed) {

        String key(CheckpointKeys keys) {
            return CheckpointKeys.PREFIX + keys.module(module) + (relative.isEmpty() ? "" : "." + relative);
        }

        long[] storedShape() {
            long[] shape = variable.getArr().shape();
            return transposed ? new long[] {shape[1], shape[0]} : shape;
        }
    }

    private final Map<String, List<String>> modulesByAdapter = new LinkedHashMap<>();
    private final Map<String, List<Entry>> entriesByAdapter = new LinkedHashMap<>();
    private final Map<String, Map<String, INDArray>> stored = new HashMap<>();
    private final Map<String, INDArray> baseValues = new HashMap<>();
    private final Map<String, String> owner = new HashMap<>();

    /**
     * Gives {@code adapter} its own copy of the modules at {@code paths} (field paths from the model
     * root), starting from the base values.
     */
    public void add(String adapter, List<String> paths, List<ModelNode> nodes) {
        List<Entry> entries = new ArrayList<>();
        for (String path : paths) {
            boolean found = false;
            for (ModelNode node : nodes) {
                found |= node.path().equals(path);
                boolean under = node.path().equals(path) || node.path().startsWith(path + ".");
                if (under && node.value() instanceof SDVariable variable && variable.getArr() != null) {
                    String relative = node.path().equals(path) ? "" : node.path().substring(path.length() + 1);
                    entries.add(new Entry(path, relative, variable, storedTransposed(node, variable)));
                }
            }
            if (!found) {
                throw new PeftException("alsoTrain(\"" + path + "\"): no field path '" + path + "' in the model");
            }
            if (entries.stream().noneMatch(entry -> entry.module().equals(path))) {
                throw new PeftException("alsoTrain(\"" + path + "\"): the module at '" + path + "' holds no SameDiff variable with a "
                        + "value, so there is nothing to train there");
            }
        }
        Map<String, INDArray> copies = new HashMap<>();
        for (Entry entry : entries) {
            String name = entry.variable().name();
            baseValues.computeIfAbsent(name, unused -> entry.variable().getArr().dup());
            copies.put(name, baseValues.get(name).dup());
        }
        modulesByAdapter.put(adapter, List.copyOf(paths));
        entriesByAdapter.put(adapter, List.copyOf(entries));
        stored.put(adapter, copies);
    }

    private static boolean storedTransposed(ModelNode node, SDVariable variable) {
        Weight weight = node.field() == null ? null : node.field().getAnnotation(Weight.class);
        return weight != null && weight.layout() == WeightLayout.IN_OUT && variable.getArr().rank() == 2;
    }

    /** Gives {@code adapter} a copy of {@code source}'s modules, with {@code source}'s current values. */
    public void addCopy(String adapter, String source) {
        List<Entry> entries = entriesByAdapter.getOrDefault(source, List.of());
        Map<String, INDArray> copies = new HashMap<>();
        entries.forEach(entry -> copies.put(entry.variable().name(), valueOf(source, entry).dup()));
        modulesByAdapter.put(adapter, paths(source));
        entriesByAdapter.put(adapter, entries);
        stored.put(adapter, copies);
    }

    /** The model paths that PEFT's {@code modules_to_save} names select, in the file's naming. */
    public static List<String> resolve(List<String> names, List<ModelNode> nodes, CheckpointKeys keys) {
        List<String> paths = new ArrayList<>();
        for (String name : names) {
            boolean matched = false;
            for (ModelNode node : nodes) {
                if (ModelWalker.isModule(node.value()) && TargetModules.matches(name, keys.module(node.path()))
                        && paths.stream().noneMatch(path -> node.path().startsWith(path + "."))) {
                    paths.add(node.path());
                    matched = true;
                }
            }
            if (!matched) {
                throw new PeftException("modules_to_save names '" + name + "', but no module of the model is called that");
            }
        }
        return paths;
    }

    /** Whether {@code adapter} has trained extra modules. */
    public boolean has(String adapter) {
        return !entriesByAdapter.getOrDefault(adapter, List.of()).isEmpty();
    }

    /** The module paths {@code adapter} trains besides its own parameters. */
    public List<String> paths(String adapter) {
        return modulesByAdapter.getOrDefault(adapter, List.of());
    }

    /** Drops {@code adapter}'s copies; variables that held them get their base values back. */
    public void remove(String adapter) {
        for (Entry entry : entriesByAdapter.getOrDefault(adapter, List.of())) {
            String name = entry.variable().name();
            if (adapter.equals(owner.get(name))) {
                entry.variable().getArr().assign(baseValues.get(name));
                owner.remove(name);
            }
        }
        modulesByAdapter.remove(adapter);
        entriesByAdapter.remove(adapter);
        stored.remove(adapter);
    }

    /** Puts into the graph variables the copies of the first active adapter having each (base values when disabled). */
    public void activate(List<String> active, boolean disabled) {
        Map<String, SDVariable> variables = new LinkedHashMap<>();
        entriesByAdapter.values().forEach(entries -> entries.forEach(entry -> variables.put(entry.variable().name(), entry.variable())));
        for (Map.Entry<String, SDVariable> variable : variables.entrySet()) {
            String name = variable.getKey();
            String wanted = disabled ? null : active.stream().filter(adapter -> holds(adapter, name)).findFirst().orElse(null);
            String current = owner.get(name);
            if (java.util.Objects.equals(wanted, current)) {
                continue;
            }
            INDArray live = variable.getValue().getArr();
            if (current != null) {
                stored.get(current).get(name).assign(live);
            }
            live.assign(wanted == null ? baseValues.get(name) : stored.get(wanted).get(name));
            if (wanted == null) {
                owner.remove(name);
            } else {
                owner.put(name, wanted);
            }
        }
    }

    private boolean holds(String adapter, String variable) {
        return stored.getOrDefault(adapter, Map.of()).containsKey(variable);
    }

    /** The variables whose live values are the copy of one of {@code adapters}: trainable with them. */
    public Set<String> liveVariablesOf(List<String> adapters) {
        Set<String> names = new LinkedHashSet<>();
        owner.forEach((variable, adapter) -> {
            if (adapters.contains(adapter)) {
                names.add(variable);
            }
        });
        return names;
    }

    /** Parameters of the modules whose live values belong to {@code adapters}. */
    public long liveParameters(List<String> adapters) {
        Set<String> names = liveVariablesOf(adapters);
        Map<String, Long> sizes = new HashMap<>();
        entriesByAdapter.values().forEach(entries -> entries.forEach(entry -> sizes.put(entry.variable().name(), entry.variable().getArr().length())));
        return names.stream().mapToLong(name -> sizes.getOrDefault(name, 0L)).sum();
    }

    /** {@code adapter}'s module names as the file names them, for {@code modules_to_save}. */
    public List<String> modules(String adapter, CheckpointKeys keys) {
        return paths(adapter).stream().map(keys::module).toList();
    }

    /** {@code adapter}'s copies by checkpoint key, in PyTorch's layout. */
    public Map<String, INDArray> tensors(String adapter, CheckpointKeys keys) {
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        for (Entry entry : entriesByAdapter.getOrDefault(adapter, List.of())) {
            INDArray value = valueOf(adapter, entry);
            tensors.put(entry.key(keys), entry.transposed() ? value.transpose() : value);
        }
        return tensors;
    }

    private INDArray valueOf(String adapter, Entry entry) {
        String name = entry.variable().name();
        return adapter.equals(owner.get(name)) ? entry.variable().getArr() : stored.get(adapter).get(name);
    }

    /**
     * Checks that {@code saved} holds exactly {@code adapter}'s modules in fitting shapes and returns the
     * action that writes them; nothing is written before it runs.
     */
    public Runnable prepareLoad(String adapter, SavedAdapter saved) {
        List<Entry> entries = entriesByAdapter.getOrDefault(adapter, List.of());
        CheckpointKeys keys = saved.keys();
        Map<String, Entry> expected = new LinkedHashMap<>();
        entries.forEach(entry -> expected.put(entry.key(keys), entry));
        List<String> missing = expected.keySet().stream().filter(key -> !saved.moduleTensors().containsKey(key)).toList();
        List<String> unexpected = saved.moduleTensors().keySet().stream().filter(key -> !expected.containsKey(key)).toList();
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            throw new CheckpointException(saved.weightsFile(), (missing.isEmpty() ? "" : "missing trained-module keys " + missing)
                    + (missing.isEmpty() || unexpected.isEmpty() ? "" : "; ")
                    + (unexpected.isEmpty() ? "" : "unexpected trained-module keys " + unexpected)
                    + ": the adapter was saved with modules_to_save " + saved.modulesToSave() + ", and adapter '" + adapter
                    + "' trains " + paths(adapter) + " (PeftModel.builder(model).alsoTrain(...))");
        }
        Map<Entry, INDArray> values = new LinkedHashMap<>();
        expected.forEach((key, entry) -> {
            INDArray tensor = saved.moduleTensors().get(key);
            if (!Arrays.equals(tensor.shape(), entry.storedShape())) {
                throw new CheckpointException(saved.weightsFile(), "tensor '" + key + "' has shape " + Arrays.toString(tensor.shape())
                        + ", but '" + entry.variable().name() + "' needs " + Arrays.toString(entry.storedShape())
                        + (entry.transposed() ? " (nn.Linear's [out, in])" : ""));
            }
            values.put(entry, entry.transposed() ? tensor.transpose() : tensor);
        });
        return () -> values.forEach((entry, value) -> valueOf(adapter, entry).assign(value.castTo(entry.variable().dataType())));
    }
}
