package io.peft4j.runtime.lora;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.CheckpointOptions;
import io.peft4j.annotations.LoraInit;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.method.MethodState;
import io.peft4j.runtime.method.NamedMethodAdapter;
import io.peft4j.runtime.method.PeftMethod;
import io.peft4j.runtime.method.TargetModules;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The LoRA part of one named adapter: a branch {@code x·A·B·s} on each of its layers.
 *
 * <p>Saved as Hugging Face PEFT saves LoRA: {@code base_model.model.<layer>.lora_A.weight [r, in]} and
 * {@code …lora_B.weight [out, r]} (the transposes of peft4j's {@code A [in, r]} and
 * {@code B [r, out]}), with {@code r}, {@code lora_alpha}, {@code rank_pattern} and
 * {@code alpha_pattern} describing every layer's rank and scale, and {@code target_modules} in PEFT's
 * short form (the names after the last dot) whenever that selects exactly these layers. A DoRA adapter
 * ({@code use_dora}) adds {@code …lora_magnitude_vector [out]} per layer.
 */
public final class LoraAdapter extends NamedMethodAdapter {

    private static final System.Logger LOG = System.getLogger(LoraAdapter.class.getName());

    /** PEFT's key for DoRA's magnitude vector {@code [out]} (written without the {@code .weight} of its module, as PEFT does). */
    static final String MAGNITUDE_SUFFIX = ".lora_magnitude_vector";

    private final Map<String, LoraBranch> branches;
    private final List<String> modulePaths;

    LoraAdapter(PeftMethod method, String adapterName, Map<String, LoraBranch> branches, List<String> modulePaths) {
        super(method, adapterName);
        this.branches = new LinkedHashMap<>(branches);
        this.modulePaths = List.copyOf(modulePaths);
    }

    /** The LoRA part of the first active adapter of {@code peft} that has one. */
    public static LoraAdapter of(PeftModel peft) {
        for (String name : peft.activeAdapters()) {
            LoraAdapter part = peft.adapter(name).part(LoraAdapter.class);
            if (part != null) {
                return part;
            }
        }
        throw new PeftException("No active adapter has LoRA layers; active adapters are " + peft.activeAdapters()
                + " of " + peft.adapterNames());
    }

    /** The LoRA part of adapter {@code name}. */
    public static LoraAdapter of(PeftModel peft, String name) {
        return peft.adapter(name).requirePart(LoraAdapter.class, "LoRA layers");
    }

    @Override
    public List<String> layers() {
        return List.copyOf(branches.keySet());
    }

    /** Every adapted layer, in model order. */
    public List<LoraLayer> layerViews() {
        return branches.values().stream().map(LoraBranch::view).toList();
    }

    /** The adapted layer at {@code path}. */
    public LoraLayer layer(String path) {
        LoraBranch branch = branches.get(path);
        if (branch == null) {
            throw new PeftException("Adapter '" + adapterName() + "' has no LoRA layer at '" + path + "'; its LoRA layers are "
                    + branches.keySet());
        }
        return branch.view();
    }

    @Override
    public List<String> variableNames() {
        return branches.values().stream().flatMap(branch -> branch.variableNames().stream()).toList();
    }

    @Override
    public long parameterCount() {
        return branches.values().stream().mapToLong(LoraBranch::parameterCount).sum();
    }

    @Override
    public List<String> unwiredLayers() {
        return branches.values().stream().filter(branch -> branch.isGraph() && branch.graphUses() == 0).map(branch -> branch.site().path())
                .toList();
    }

    @Override
    public void setActive(boolean active) {
        branches.values().forEach(branch -> branch.setActive(active));
    }

    @Override
    public void setTraining(boolean training) {
        branches.values().forEach(branch -> branch.setTraining(training));
    }

    @Override
    public void remove() {
        for (LoraBranch branch : branches.values()) {
            branch.setRemoved();
            branch.site().remove(branch);
        }
    }

    @Override
    public void detach() {
        branches.values().forEach(branch -> branch.site().unregister());
    }

    @Override
    public boolean mergeable() {
        return true;
    }

    @Override
    public boolean merged() {
        return branches.values().stream().anyMatch(LoraBranch::isMerged);
    }

    /** {@code W += s·A·B} for every layer, all or nothing: a non-finite result leaves every weight as it was. */
    @Override
    public void merge() {
        List<LoraBranch> done = new ArrayList<>();
        try {
            for (LoraBranch branch : branches.values()) {
                if (!branch.isMerged()) {
                    branch.merge();
                    done.add(branch);
                }
            }
        } catch (RuntimeException e) {
            done.forEach(LoraBranch::unmerge);
            throw e;
        }
    }

    @Override
    public void unmerge() {
        int stale = 0;
        for (LoraBranch branch : branches.values()) {
            if (branch.isMerged()) {
                branch.unmerge();
                stale += branch.graphsBuiltWhileMerged();
            }
        }
        if (stale > 0) {
            LOG.log(System.Logger.Level.WARNING, "adapter ''{0}'' was unmerged, but {1} forward calls built graphs while it was "
                    + "merged; those graphs have no LoRA branch and now compute the base model", adapterName(), stale);
        }
    }

    @Override
    public boolean supportsMixedBatches() {
        return true;
    }

    List<LoraBranch> branches() {
        return List.copyOf(branches.values());
    }

    @Override
    public MethodState state(CheckpointKeys keys) {
        Map<String, LoraBranch> byModule = byModule(keys);
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        Map<String, LoraSettings> settings = new LinkedHashMap<>();
        byModule.forEach((module, branch) -> {
            tensors.put(CheckpointKeys.PREFIX + module + ".lora_A.weight", branch.factorA().transpose());
            tensors.put(CheckpointKeys.PREFIX + module + ".lora_B.weight", branch.factorB().transpose());
            if (branch.magnitude() != null) {
                tensors.put(CheckpointKeys.PREFIX + module + MAGNITUDE_SUFFIX, branch.magnitude());
            }
            settings.put(module, branch.settings());
        });
        return new MethodState(tensors, configOf(settings, keys).toJson());
    }

    /**
     * With {@link CheckpointOptions#asPlainLora()}: PEFT's conversion of a PiSSA/OLoRA adapter for the original base,
     * {@code ΔW = s·(A·B − A₀·B₀) = s·[A, A₀]·[B; −B₀]}, at rank 2r with the same scale.
     */
    @Override
    public MethodState state(CheckpointOptions options) {
        if (!options.asPlainLora()) {
            return state(options.keys());
        }
        Map<String, LoraBranch> byModule = byModule(options.keys());
        List<String> notConverted = byModule.values().stream().filter(branch -> branch.initialFactors() == null)
                .map(branch -> branch.site().path() + " (" + branch.settings().init() + ")").toList();
        if (!notConverted.isEmpty()) {
            throw new PeftException("Adapter '" + adapterName() + "' cannot be saved as a plain LoRA: the conversion undoes what a "
                    + "PiSSA or OLoRA initialisation took out of the base weights, and " + notConverted + " did not start that way");
        }
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        Map<String, LoraSettings> settings = new LinkedHashMap<>();
        byModule.forEach((module, branch) -> {
            INDArray[] initial = branch.initialFactors();
            DataType dtype = branch.factorA().dataType();
            tensors.put(CheckpointKeys.PREFIX + module + ".lora_A.weight",
                    Nd4j.concat(1, branch.factorA(), initial[0].castTo(dtype)).transpose());
            tensors.put(CheckpointKeys.PREFIX + module + ".lora_B.weight",
                    Nd4j.concat(0, branch.factorB(), initial[1].castTo(dtype).neg()).transpose());
            if (branch.magnitude() != null) {
                tensors.put(CheckpointKeys.PREFIX + module + MAGNITUDE_SUFFIX, branch.magnitude());
            }
            LoraSettings own = branch.settings();
            double alpha = own.alpha() * (own.rslora() ? Math.sqrt(2) : 2);
            settings.put(module, new LoraSettings(2 * own.rank(), alpha, own.dropout(), own.rslora(), own.dora(), LoraInit.DEFAULT));
        });
        return new MethodState(tensors, configOf(settings, options.keys()).toJson());
    }

    private Map<String, LoraBranch> byModule(CheckpointKeys keys) {
        Map<String, LoraBranch> byModule = new LinkedHashMap<>();
        branches.forEach((path, branch) -> {
            LoraBranch clash = byModule.put(keys.module(path), branch);
            if (clash != null) {
                throw new IllegalArgumentException("the layer name mapping gives '" + keys.module(path) + "' to both '"
                        + clash.site().path() + "' and '" + path + "'");
            }
        });
        return byModule;
    }

    /**
     * PEFT has one {@code use_rslora} for the whole adapter; a layer whose rsLoRA setting differs gets
     * the {@code alpha_pattern} entry that gives it the same scale under the adapter-wide setting.
     */
    private LoraConfig configOf(Map<String, LoraSettings> byModule, CheckpointKeys keys) {
        List<LoraSettings> settings = List.copyOf(byModule.values());
        boolean rslora = mostCommon(settings, LoraSettings::rslora);
        Map<String, Double> alphas = new LinkedHashMap<>();
        byModule.forEach((module, layer) -> alphas.put(module, alphaUnder(layer, rslora)));
        int rank = mostCommon(settings, LoraSettings::rank);
        double alpha = mostCommon(new ArrayList<>(alphas.values()), Function.identity());
        Map<String, Integer> rankPattern = new LinkedHashMap<>();
        Map<String, Double> alphaPattern = new LinkedHashMap<>();
        byModule.forEach((module, layer) -> {
            if (layer.rank() != rank) {
                rankPattern.put(module, layer.rank());
            }
            if (alphas.get(module) != alpha) {
                alphaPattern.put(module, alphas.get(module));
            }
        });
        List<String> modules = modulePaths.stream().map(keys::module).toList();
        return LoraConfig.saved(rank, alpha, mostCommon(settings, LoraSettings::dropout), rslora, settings.get(0).dora(),
                mostCommon(settings, LoraSettings::init), TargetModules.shortest(byModule.keySet(), modules), keys.fanInFanOut(), rankPattern, alphaPattern);
    }

    /** The alpha that gives {@code settings} their scale when the scale is computed with {@code rslora}. */
    private static double alphaUnder(LoraSettings settings, boolean rslora) {
        return settings.rslora() == rslora ? settings.alpha() : settings.scaling() * (rslora ? Math.sqrt(settings.rank()) : settings.rank());
    }

    private static <E, T> T mostCommon(List<E> items, Function<E, T> property) {
        Map<T, Long> counts = items.stream().collect(Collectors.groupingBy(property, LinkedHashMap::new, Collectors.counting()));
        return counts.entrySet().stream().max(Comparator.comparingLong(Map.Entry::getValue)).orElseThrow().getKey();
    }

    @Override
    public Runnable prepareLoad(SavedAdapter saved) {
        LoraConfig config = LoraConfig.read(saved);
        Map<String, LoraBranch> byModule = byModule(saved.keys());
        List<String> expected = new ArrayList<>();
        byModule.forEach((module, branch) -> {
            expected.add(CheckpointKeys.PREFIX + module + ".lora_A.weight");
            expected.add(CheckpointKeys.PREFIX + module + ".lora_B.weight");
            if (branch.settings().dora()) {
                expected.add(CheckpointKeys.PREFIX + module + MAGNITUDE_SUFFIX);
            }
        });
        if (config.useDora() != branches.values().iterator().next().settings().dora()) {
            throw new CheckpointException(saved.configFile(), "has use_dora = " + config.useDora() + ", but adapter '" + adapterName()
                    + "' " + (config.useDora() ? "is plain LoRA" : "uses DoRA") + "; load it into an adapter created from the same config");
        }
        Map<String, INDArray> tensors = saved.tensors().requireExactly(expected,
                "the adapter was saved for a model with other LoRA layers (or another layer name mapping)");
        requireTargets(saved, config, byModule.keySet());
        Map<LoraBranch, INDArray[]> values = new LinkedHashMap<>();
        byModule.forEach((module, branch) -> {
            LoraSettings settings = branch.settings();
            String path = branch.site().path();
            if (config.rankOf(module) != settings.rank()) {
                throw new CheckpointException(saved.configFile(), "says r = " + config.rankOf(module) + " for '" + module
                        + "', but adapter '" + adapterName() + "' has rank = " + settings.rank() + " on '" + path + "'");
            }
            double fileScale = config.scalingOf(module);
            if (Math.abs(fileScale - settings.scaling()) > 1e-9 * Math.abs(settings.scaling())) {
                throw new CheckpointException(saved.configFile(), "gives '" + module + "' the scale " + fileScale + " (lora_alpha = "
                        + config.alphaOf(module) + ", r = " + config.rankOf(module) + ", use_rslora = " + config.useRslora()
                        + "), but adapter '" + adapterName() + "' on '" + path + "' (alpha = " + settings.alpha() + ", rank = "
                        + settings.rank() + ", rslora = " + settings.rslora() + ") has " + settings.scaling());
            }
            String keyA = CheckpointKeys.PREFIX + module + ".lora_A.weight";
            String keyB = CheckpointKeys.PREFIX + module + ".lora_B.weight";
            INDArray a = tensors.get(keyA);
            INDArray b = tensors.get(keyB);
            String layer = "layer '" + path + "' (in = " + branch.site().in() + ", out = " + branch.site().out() + ", r = "
                    + settings.rank() + ")";
            saved.tensors().requireShape(keyA, a, new long[] {settings.rank(), branch.site().in()}, layer);
            saved.tensors().requireShape(keyB, b, new long[] {branch.site().out(), settings.rank()}, layer);
            INDArray magnitude = null;
            if (branch.magnitude() != null) {
                String keyM = CheckpointKeys.PREFIX + module + MAGNITUDE_SUFFIX;
                magnitude = tensors.get(keyM);
                saved.tensors().requireShape(keyM, magnitude, new long[] {branch.site().out()}, layer);
            }
            values.put(branch, new INDArray[] {a, b, magnitude});
        });
        return () -> values.forEach((branch, stored) -> {
            branch.factorA().assign(stored[0].castTo(branch.factorA().dataType()).transpose());
            branch.factorB().assign(stored[1].castTo(branch.factorB().dataType()).transpose());
            if (stored[2] != null) {
                branch.magnitude().assign(stored[2].castTo(branch.magnitude().dataType()));
            }
        });
    }

    /** The config's target_modules must select these layers and name nothing the model lacks. */
    private void requireTargets(SavedAdapter saved, LoraConfig config, java.util.Set<String> adapted) {
        List<String> missed = adapted.stream().filter(module -> !config.targets(module)).toList();
        if (!missed.isEmpty() && config.selection().hasTargets()) {
            throw new CheckpointException(saved.configFile(), "target_modules " + config.selection().describeTargets() + " does not select "
                    + missed + ", which the file holds LoRA weights for");
        }
        List<String> modules = modulePaths.stream().map(saved.keys()::module).toList();
        List<String> unknown = config.selection().targetModules().stream()
                .filter(target -> modules.stream().noneMatch(module -> TargetModules.matches(target, module))).toList();
        if (!unknown.isEmpty()) {
            throw new CheckpointException(saved.configFile(), "target_modules names " + unknown + ", which the model has no module called");
        }
    }

    @Override
    public String toString() {
        return "LoRA of adapter '" + adapterName() + "' on " + branches.keySet();
    }
}
