package io.peft4j.runtime.ia3;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.method.MethodState;
import io.peft4j.runtime.method.NamedMethodAdapter;
import io.peft4j.runtime.method.PeftMethod;
import io.peft4j.runtime.method.TargetModules;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The (IA)³ part of one named adapter: a vector on each of its layers.
 *
 * <p>Saved as Hugging Face PEFT saves IA³: {@code base_model.model.<layer>.ia3_l}, shaped
 * {@code [out, 1]} for an output vector and {@code [1, in]} for a feed-forward (input) vector, with
 * {@code target_modules} and {@code feedforward_modules} in the config.
 */
public final class Ia3Adapter extends NamedMethodAdapter {

    private final Map<String, Ia3Vector> vectors;
    private final Map<String, Ia3Site> sites;
    private final List<String> modulePaths;

    Ia3Adapter(PeftMethod method, String adapterName, Map<String, Ia3Vector> vectors, Map<String, Ia3Site> sites, List<String> modulePaths) {
        super(method, adapterName);
        this.vectors = new LinkedHashMap<>(vectors);
        this.sites = new LinkedHashMap<>(sites);
        this.modulePaths = List.copyOf(modulePaths);
    }

    /** The (IA)³ part of adapter {@code name} of {@code peft}. */
    public static Ia3Adapter of(PeftModel peft, String name) {
        return peft.adapter(name).requirePart(Ia3Adapter.class, "(IA)³ layers");
    }

    /** The live vector of the layer at {@code path}: {@code [out]}, or {@code [in]} for a feed-forward layer. */
    public INDArray vector(String path) {
        Ia3Vector vector = vectors.get(path);
        if (vector == null) {
            throw new PeftException("Adapter '" + adapterName() + "' has no (IA)³ vector on '" + path + "'; it has " + vectors.keySet());
        }
        return vector.array();
    }

    /** Whether the layer at {@code path} rescales its input (a feed-forward layer) rather than its output. */
    public boolean feedforward(String path) {
        vector(path);
        return vectors.get(path).feedforward();
    }

    @Override
    public List<String> layers() {
        return List.copyOf(vectors.keySet());
    }

    @Override
    public List<String> variableNames() {
        return vectors.values().stream().map(Ia3Vector::variableName).filter(name -> name != null).toList();
    }

    @Override
    public long parameterCount() {
        return vectors.values().stream().mapToLong(vector -> vector.array().length()).sum();
    }

    @Override
    public List<String> unwiredLayers() {
        return vectors.entrySet().stream().filter(entry -> entry.getValue().isGraph() && entry.getValue().graphUses() == 0)
                .map(Map.Entry::getKey).toList();
    }

    @Override
    public void setActive(boolean active) {
        vectors.values().forEach(vector -> vector.setActive(active));
    }

    @Override
    public void setTraining(boolean training) {
        // (IA)³ has no dropout or other training-only behaviour.
    }

    @Override
    public void remove() {
        vectors.forEach((path, vector) -> {
            vector.setRemoved();
            sites.get(path).remove(vector);
        });
    }

    @Override
    public void detach() {
        sites.values().forEach(Ia3Site::unregister);
    }

    @Override
    public boolean mergeable() {
        return true;
    }

    @Override
    public boolean merged() {
        return vectors.values().stream().anyMatch(Ia3Vector::merged);
    }

    /** Scales every layer's weight (and an output vector's bias) by its vector; all or nothing. */
    @Override
    public void merge() {
        List<String> done = new ArrayList<>();
        try {
            vectors.forEach((path, vector) -> {
                if (!vector.merged()) {
                    sites.get(path).fold(vector, false);
                    vector.setMerged(true);
                    done.add(path);
                }
            });
        } catch (RuntimeException e) {
            done.forEach(path -> {
                sites.get(path).fold(vectors.get(path), true);
                vectors.get(path).setMerged(false);
            });
            throw e;
        }
    }

    /** Divides the weights (and biases) by the vectors again; exact up to rounding, unlike PEFT's {@code l + 1e-8}. */
    @Override
    public void unmerge() {
        vectors.forEach((path, vector) -> {
            if (vector.merged()) {
                sites.get(path).fold(vector, true);
                vector.setMerged(false);
            }
        });
    }

    @Override
    public MethodState state(CheckpointKeys keys) {
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        List<String> modules = new ArrayList<>();
        List<String> feedforwardModules = new ArrayList<>();
        vectors.forEach((path, vector) -> {
            String module = keys.module(path);
            modules.add(module);
            if (vector.feedforward()) {
                feedforwardModules.add(module);
            }
            INDArray l = vector.array();
            tensors.put(CheckpointKeys.PREFIX + module + ".ia3_l", vector.feedforward() ? l.reshape(1, l.length()) : l.reshape(l.length(), 1));
        });
        List<String> all = modulePaths.stream().map(keys::module).toList();
        List<String> shortTargets = TargetModules.shortest(modules, all);
        List<String> shortFeedforward = shortTargets.stream().filter(target -> modules.stream().anyMatch(module -> module.endsWith(target))
                && modules.stream().filter(module -> module.endsWith(target)).allMatch(feedforwardModules::contains)).toList();
        boolean exact = modules.stream()
                .allMatch(module -> shortFeedforward.stream().anyMatch(module::endsWith) == feedforwardModules.contains(module));
        // A short name could mark other layers feed-forward under PEFT's plain-suffix rule: then every layer goes by its path.
        List<String> targets = exact ? shortTargets : List.copyOf(modules);
        List<String> feedforward = exact ? shortFeedforward : List.copyOf(feedforwardModules);
        return new MethodState(tensors, Ia3Config.saved(targets, feedforward, keys.fanInFanOut()).toJson());
    }

    @Override
    public Runnable prepareLoad(SavedAdapter saved) {
        Ia3Config config = Ia3Config.read(saved.reader(), saved.modulesToSave());
        Map<String, Ia3Vector> byKey = new LinkedHashMap<>();
        vectors.forEach((path, vector) -> byKey.put(CheckpointKeys.PREFIX + saved.keys().module(path) + ".ia3_l", vector));
        Map<String, INDArray> tensors = saved.tensors().requireExactly(new ArrayList<>(byKey.keySet()),
                "the adapter was saved for a model with other (IA)³ layers (or another layer name mapping)");
        Map<Ia3Vector, INDArray> values = new LinkedHashMap<>();
        byKey.forEach((key, vector) -> {
            String path = pathOf(vector);
            String module = saved.keys().module(path);
            if (config.isFeedforward(module) != vector.feedforward()) {
                throw new CheckpointException(saved.configFile(), "feedforward_modules " + (config.isFeedforward(module) ? "includes" : "leaves out")
                        + " '" + module + "', but adapter '" + adapterName() + "' rescales its " + (vector.feedforward() ? "input" : "output"));
            }
            long length = vector.array().length();
            INDArray stored = tensors.get(key);
            saved.tensors().requireShape(key, stored, vector.feedforward() ? new long[] {1, length} : new long[] {length, 1},
                    "layer '" + path + "' (" + (vector.feedforward() ? "feed-forward, in = " : "out = ") + length + ")");
            values.put(vector, stored);
        });
        return () -> values.forEach((vector, stored) -> vector.array().assign(stored.castTo(vector.array().dataType()).reshape(-1)));
    }

    private String pathOf(Ia3Vector vector) {
        return vectors.entrySet().stream().filter(entry -> entry.getValue() == vector).findFirst().orElseThrow().getKey();
    }

    @Override
    public String toString() {
        return "(IA)³ of adapter '" + adapterName() + "' on " + vectors.keySet();
    }
}
