package io.peft4j.runtime;

import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.CheckpointOptions;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import io.peft4j.runtime.checkpoint.TensorDtype;
import io.peft4j.runtime.internal.AdapterOwner;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.internal.DefaultAttachContext;
import io.peft4j.runtime.method.PeftMethods;
import io.peft4j.runtime.internal.ModelWalker;
import io.peft4j.runtime.internal.ModulesToSave;
import io.peft4j.runtime.internal.TrainingCheckpoints;
import io.peft4j.runtime.method.MethodAdapter;
import io.peft4j.runtime.method.MethodConfig;
import io.peft4j.runtime.method.ModelNode;
import io.peft4j.runtime.method.PeftMethod;
import java.lang.annotation.Annotation;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Function;
import java.util.stream.Collectors;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.adapter.MultiDataSetIteratorAdapter;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;

/**
 * A model with named adapters on one base, Hugging Face PEFT's {@code PeftModel} for Java model code.
 *
 * <pre>{@code
 * SameDiff sd = SameDiff.create();
 * MyModel model = new MyModel(sd);                    // layers create their weights
 * PeftModel peft = PeftModel.attach(model);           // adapter "default" from the annotations; the base is frozen
 * SDVariable logits = model.forward(input);           // adapted layers now add their adapters
 * peft.train(trainingConfig, trainData, epochs);      // only the active adapters change
 * peft.addAdapter("other", otherDir);                 // a saved adapter, with its own config
 * peft.setAdapter("other");                           // graph constants change, the graph does not
 * try (AdapterScope base = peft.disableAdapters()) { ... }   // the base model's outputs
 * peft.merge();                                       // W += s·A·B, then deploy without the agent
 * }</pre>
 *
 * <p>Every adapter has a name ({@code "default"} unless given) and one part per PEFT method it uses
 * (LoRA, bottleneck adapters, prompt or prefix tuning, and whatever method a jar registers). Any number
 * of adapters can be on at once; their contributions add. A graph includes the adapters that exist when
 * it is built (attach and add adapters before building it); switching, disabling, deleting and merging
 * change graph constants, so a graph built once serves every adapter. Layers are named by their field
 * path from the root. A layer's annotation comes from its field if the field is annotated, else from
 * its class.
 *
 * <p>Not thread-safe: use one thread per {@code PeftModel} (two models may train in two threads).
 */
public final class PeftModel {

    private static final String ROWS_PLACEHOLDER = "peft4j_adapter_per_row";

    private final Object root;
    private final AdapterOwner owner = new AdapterOwner();
    private final List<ModelNode> nodes;
    private final Set<SameDiff> graphs;
    private final long eagerBaseParameters;
    private final Map<String, Adapter> adapters = new LinkedHashMap<>();
    private final List<String> active = new ArrayList<>();
    private final ModulesToSave modules = new ModulesToSave();
    private final Map<SameDiff, Set<String>> baseParameters = new IdentityHashMap<>();
    private final Set<String> retired = new HashSet<>();
    private int nextAdapterId;
    private boolean detached;

    /** One named adapter's state. */
    private record Adapter(String name, int id, List<MethodAdapter> parts, List<String> alsoTrain, String taskType, String baseModel) {
        NamedAdapter view() {
            return new NamedAdapter(name, parts, alsoTrain, taskType, baseModel);
        }
    }

    private PeftModel(Object root) {
        if (root == null) {
            throw new PeftException("Cannot attach PEFT to a null model");
        }
        AgentStatus.requireInstalled("attach PEFT to " + root.getClass().getName());
        this.root = root;
        this.nodes = ModelWalker.walk(root);
        Set<SameDiff> found = Collections.newSetFromMap(new IdentityHashMap<>());
        nodes.stream().filter(node -> node.value() instanceof SDVariable).forEach(node -> found.add(((SDVariable) node.value()).getSameDiff()));
        this.graphs = found;
        this.eagerBaseParameters = graphs.isEmpty() ? nodes.stream().filter(node -> node.value() instanceof INDArray)
                .mapToLong(node -> ((INDArray) node.value()).length()).sum() : 0;
        graphs.forEach(this::recordBaseParameters);
    }

    /** Attaches adapter {@code "default"} with every method the model's annotations declare, seed 42. */
    public static PeftModel attach(Object root) {
        return builder(root).attach();
    }

    public static Builder builder(Object root) {
        return new Builder(root);
    }

    /**
     * Attaches the adapter saved in {@code adapterDir} (its config decides layers, ranks and lengths, not
     * the annotations) as the active adapter {@code "default"}, with its trained extra modules, as
     * Hugging Face PEFT's {@code PeftModel.from_pretrained} does.
     */
    public static PeftModel fromPretrained(Object root, Path adapterDir) {
        return fromPretrained(root, adapterDir, CheckpointOptions.defaults());
    }

    /** As {@link #fromPretrained(Object, Path)}, named {@code options.adapterName()} if given. */
    public static PeftModel fromPretrained(Object root, Path adapterDir, CheckpointOptions options) {
        PeftModel model = new PeftModel(root);
        String name = options.adapterName() != null ? options.adapterName() : AdapterCheckpoint.DEFAULT_ADAPTER;
        model.addAdapter(name, adapterDir, options);
        model.setAdapter(name);
        model.freezeForTraining();
        return model;
    }

    /** Options for the first adapter of {@link PeftModel#attach}. */
    public static final class Builder {
        private final Object root;
        private String adapterName = AdapterCheckpoint.DEFAULT_ADAPTER;
        private AdapterOptions options = AdapterOptions.defaults();

        private Builder(Object root) {
            if (root == null) {
                throw new PeftException("Cannot attach PEFT to a null model");
            }
            this.root = root;
        }

        /** The first adapter's name ({@code "default"} by default). */
        public Builder adapterName(String name) {
            this.adapterName = name;
            return this;
        }

        /** The seed of every initialisation (lora_A's kaiming-uniform, prompts, ...). */
        public Builder seed(long seed) {
            options = options.withSeed(seed);
            return this;
        }

        /**
         * Keeps every SameDiff variable under these field paths trainable and saves it with the adapter,
         * like Hugging Face PEFT's {@code modules_to_save} (typically a new classifier head).
         */
        public Builder alsoTrain(String... paths) {
            options = options.withAlsoTrain(paths);
            return this;
        }

        /**
         * Uses only these annotations' methods (all by default): one model annotated for several methods
         * can be adapted by each in turn, e.g. {@code only(LoRA.class)}.
         */
        @SafeVarargs
        public final Builder only(Class<? extends Annotation>... selected) {
            options = options.withMethods(selected);
            return this;
        }

        /**
         * Selects layers by name with a method's config, as Hugging Face PEFT's {@code target_modules} does,
         * for model code one cannot annotate: {@code config(LoraConfig.targeting("query", "value").rank(8))}.
         * Annotated layers the config does not name keep their annotations; where both name a layer, the
         * config wins.
         */
        public Builder config(MethodConfig config) {
            options = options.withConfig(config);
            return this;
        }

        /** Overrides the annotations' {@code virtualTokens} for prompt and prefix tuning (0 switches them off). */
        public Builder virtualTokens(int count) {
            options = options.withVirtualTokens(count);
            return this;
        }

        /** Turns {@code @PromptTuning(init = TEXT, text = ...)} text into token ids of the model's vocabulary. */
        public Builder promptTokenizer(Function<String, int[]> tokenizer) {
            options = options.withPromptTokenizer(tokenizer);
            return this;
        }

        /** PEFT's {@code task_type} saved with the adapter ({@code SEQ_CLS}, {@code CAUSAL_LM}, ...). */
        public Builder taskType(String taskType) {
            options = options.withTaskType(taskType);
            return this;
        }

        /** {@code base_model_name_or_path} saved with the adapter. */
        public Builder baseModel(String name) {
            options = options.withBaseModel(name);
            return this;
        }

        public PeftModel attach() {
            PeftModel model = new PeftModel(root);
            model.addAdapter(adapterName, options);
            model.setAdapter(adapterName);
            model.freezeForTraining();
            return model;
        }
    }

    // ---- adapters ----

    /** Adds adapter {@code name} from the model's annotations, every annotated method, seed 42; it is not active until set. */
    public NamedAdapter addAdapter(String name) {
        return addAdapter(name, AdapterOptions.defaults());
    }

    /** Adds adapter {@code name} from the model's annotations as {@code options} say; it is not active until set. */
    public NamedAdapter addAdapter(String name, AdapterOptions options) {
        requireAttached();
        requireNewName(name);
        List<PeftMethod> methods = options.methods().isEmpty() ? PeftMethods.all()
                : java.util.stream.Stream.concat(options.methods().stream(), options.configs().stream().map(MethodConfig::annotation))
                        .distinct().<PeftMethod>map(PeftMethods::byAnnotation).toList();
        DefaultAttachContext context = context(name, options);
        List<MethodAdapter> parts = new ArrayList<>();
        try {
            for (PeftMethod method : methods) {
                MethodAdapter part = method.attach(context);
                if (part != null) {
                    parts.add(part);
                }
            }
            if (parts.isEmpty()) {
                throw new PeftException("No layer reachable from " + root.getClass().getName() + " is annotated with "
                        + methods.stream().map(method -> "@" + method.annotation().getSimpleName()).collect(Collectors.joining(" or "))
                        + ": annotate a layer class (e.g. @LoRA(rank = 8) public final class Linear) or a layer field "
                        + "(e.g. @LoRA(rank = 8) final Linear query) of the model, or select layers by name with a config "
                        + "(PeftModel.builder(model).config(LoraConfig.targeting(\"query\", \"value\")))");
            }
            modules.add(name, options.alsoTrain(), nodes);
        } catch (RuntimeException e) {
            parts.forEach(MethodAdapter::remove);
            modules.remove(name);
            throw e;
        }
        return register(new Adapter(name, context.adapterId(), parts, options.alsoTrain(), options.taskType(), options.baseModel()));
    }

    /**
     * Adds the adapter saved in {@code adapterDir} (its own directory: config and weights) under
     * {@code name}, with the layers, ranks and trained extra modules its config names; it is not active
     * until set.
     */
    public NamedAdapter addAdapter(String name, Path adapterDir) {
        return addAdapter(name, adapterDir, CheckpointOptions.defaults());
    }

    /** As {@link #addAdapter(String, Path)}, with the layer name mapping and checks of {@code options}. */
    public NamedAdapter addAdapter(String name, Path adapterDir, CheckpointOptions options) {
        requireAttached();
        requireNewName(name);
        CheckpointKeys keys = options.keys();
        SavedAdapter saved = AdapterCheckpoint.read(adapterDir, name, keys, options.allowNonFinite());
        PeftMethod method = PeftMethods.byPeftType(saved.peftType());
        DefaultAttachContext context = context(name, AdapterOptions.defaults());
        MethodAdapter part = null;
        List<String> heads = List.of();
        try {
            part = method.restore(context, saved);
            heads = ModulesToSave.resolve(saved.modulesToSave(), nodes, keys);
            modules.add(name, heads, nodes);
            Runnable writeAdapter = part.prepareLoad(saved);
            Runnable writeHeads = modules.prepareLoad(name, saved);
            writeAdapter.run();
            writeHeads.run();
        } catch (RuntimeException e) {
            if (part != null) {
                part.remove();
            }
            modules.remove(name);
            throw e;
        }
        return register(new Adapter(name, context.adapterId(), List.of(part), heads, saved.taskType(), saved.baseModel()));
    }

    private DefaultAttachContext context(String name, AdapterOptions options) {
        return new DefaultAttachContext(name, nextAdapterId++, owner, nodes, options.seed(), options.virtualTokens(),
                options.promptTokenizer(), options.configs(), options.alsoTrain());
    }

    private NamedAdapter register(Adapter adapter) {
        adapters.put(adapter.name(), adapter);
        applyActivation();
        return adapter.view();
    }

    private void requireNewName(String name) {
        if (name == null || name.isBlank() || name.contains("/") || name.contains("\\") || name.equals(MixedBatch.BASE)) {
            throw new PeftException("'" + name + "' cannot name an adapter: use a plain directory name other than " + MixedBatch.BASE);
        }
        if (adapters.containsKey(name)) {
            throw new PeftException("The model already has an adapter named '" + name + "'; adapters are " + adapters.keySet());
        }
    }

    private Adapter require(String name) {
        Adapter adapter = adapters.get(name);
        if (adapter == null) {
            throw new PeftException("No adapter named '" + name + "'; the model's adapters are " + adapters.keySet());
        }
        return adapter;
    }

    /** The adapter {@code name}. */
    public NamedAdapter adapter(String name) {
        return require(name).view();
    }

    /** Every adapter's name, in the order they were added. */
    public List<String> adapterNames() {
        return List.copyOf(adapters.keySet());
    }

    /** The adapters that are on, in the order they were set. */
    public List<String> activeAdapters() {
        return List.copyOf(active);
    }

    /** Makes {@code name} the only active adapter. */
    public void setAdapter(String name) {
        setAdapters(List.of(name));
    }

    /** Makes exactly these adapters active; their contributions add. */
    public void setAdapters(String... names) {
        setAdapters(List.of(names));
    }

    /** As {@link #setAdapters(String...)}. */
    public void setAdapters(List<String> names) {
        requireAttached();
        names.forEach(this::require);
        if (new HashSet<>(names).size() != names.size()) {
            throw new PeftException("setAdapters names an adapter twice: " + names);
        }
        active.clear();
        active.addAll(names);
        applyActivation();
    }

    /**
     * Switches every adapter off until the returned scope closes, then restores exactly the previous
     * state (active adapters, merges), also when the block throws. Merged adapters are unmerged meanwhile.
     * Forward calls made while disabled add no adapter. Prompt and prefix tuning add sequence positions,
     * which a graph built with them keeps; build the base graph without them.
     */
    public AdapterScope disableAdapters() {
        requireAttached();
        if (owner.adaptersDisabled()) {
            return () -> { };
        }
        List<MethodAdapter> merged = allParts().stream().filter(MethodAdapter::merged).toList();
        merged.forEach(MethodAdapter::unmerge);
        owner.setDisabled(true);
        applyActivation();
        return new AdapterScope() {
            private boolean closed;

            @Override
            public void close() {
                if (closed) {
                    return;
                }
                closed = true;
                owner.setDisabled(false);
                merged.stream().filter(part -> adapters.containsKey(part.adapterName())).forEach(MethodAdapter::merge);
                applyActivation();
            }
        };
    }

    /** Deletes adapter {@code name} (unmerging it first); graphs built with it see it off. */
    public void deleteAdapter(String name) {
        requireAttached();
        Adapter adapter = require(name);
        for (MethodAdapter part : adapter.parts()) {
            if (part.merged()) {
                part.unmerge();
            }
            retired.addAll(part.variableNames());
            part.remove();
        }
        modules.remove(name);
        adapters.remove(name);
        if (active.remove(name) && active.isEmpty() && !adapters.isEmpty()) {
            active.add(adapters.keySet().iterator().next()); // as PEFT: the first remaining adapter takes over
        }
        applyActivation();
    }

    /**
     * Adds {@code newName}, the combination of the LoRA adapters named in {@code weights} (adapter name to
     * weight), as Hugging Face PEFT's {@code add_weighted_adapter} does; not active until set.
     */
    public CombinationReport addWeightedAdapter(String newName, Map<String, Double> weights, Combination combination) {
        return addWeightedAdapter(newName, weights, combination, 0);
    }

    /** As {@link #addWeightedAdapter(String, Map, Combination)}, with the rank of an SVD combination (0: the largest source rank). */
    public CombinationReport addWeightedAdapter(String newName, Map<String, Double> weights, Combination combination, int svdRank) {
        requireAttached();
        requireNewName(newName);
        if (weights.isEmpty()) {
            throw new PeftException("addWeightedAdapter needs at least one adapter and its weight");
        }
        List<MethodAdapter> sources = new ArrayList<>();
        List<Double> values = new ArrayList<>();
        PeftMethod method = null;
        for (Map.Entry<String, Double> entry : weights.entrySet()) {
            Adapter source = require(entry.getKey());
            if (source.parts().size() != 1 || (method != null && source.parts().get(0).method() != method)) {
                throw new PeftException("addWeightedAdapter combines adapters of one method; '" + entry.getKey() + "' uses "
                        + source.view().methods().stream().map(PeftMethod::name).toList());
            }
            if (entry.getValue() == null || !Double.isFinite(entry.getValue())) {
                throw new PeftException("the weight of adapter '" + entry.getKey() + "' must be a finite number, got " + entry.getValue());
            }
            method = source.parts().get(0).method();
            sources.add(source.parts().get(0));
            values.add(entry.getValue());
        }
        List<String> withHeads = weights.keySet().stream().filter(modules::has).toList();
        if (withHeads.size() > 1) {
            throw new PeftException("adapters " + withHeads + " each train extra modules (modules_to_save), which cannot be combined");
        }
        DefaultAttachContext context = context(newName, AdapterOptions.defaults());
        PeftMethod.Combined combined = method.combine(context, sources, values, combination, svdRank);
        if (!withHeads.isEmpty()) {
            modules.addCopy(newName, withHeads.get(0));
        }
        Adapter first = require(weights.keySet().iterator().next());
        register(new Adapter(newName, context.adapterId(), List.of(combined.adapter()),
                withHeads.isEmpty() ? List.of() : require(withHeads.get(0)).alsoTrain(), first.taskType(), first.baseModel()));
        return new CombinationReport(newName, combination, combined.relativeErrors());
    }

    /**
     * Opens a mixed batch: graphs built until it closes route each row of a batch to its own adapter
     * (LoRA and bottleneck adapters), selected per run by the input {@link MixedBatch#rows} gives.
     */
    public MixedBatch mixedBatch() {
        requireAttached();
        if (owner.mixedBatch()) {
            throw new PeftException("A mixed batch is already open: close it first");
        }
        SameDiff sd = sameDiff();
        String name = ROWS_PLACEHOLDER;
        for (int suffix = 2; sd.hasVariable(name); suffix++) {
            name = ROWS_PLACEHOLDER + "_" + suffix;
        }
        SDVariable rows = sd.placeHolder(name, DataType.INT32, -1);
        owner.beginMixedBatch(rows);
        Map<String, Integer> known = new LinkedHashMap<>();
        adapters.values().forEach(adapter -> known.put(adapter.name(), adapter.id()));
        return new MixedBatch(name, adapterName -> mixedRowId(adapterName, known), owner::endMixedBatch);
    }

    private int mixedRowId(String name, Map<String, Integer> known) {
        if (MixedBatch.BASE.equals(name)) {
            return -1;
        }
        Adapter adapter = adapters.get(name);
        if (adapter == null || !known.containsKey(name) || known.get(name) != adapter.id()) {
            throw new PeftException("Adapter '" + name + "' is not in this mixed-batch graph (it was added after the graph was built, or "
                    + "deleted); adapters in it: " + known.keySet() + ", and " + MixedBatch.BASE + " for the base model");
        }
        List<String> merged = allParts().stream().filter(MethodAdapter::merged).map(MethodAdapter::adapterName).distinct().toList();
        if (!merged.isEmpty()) {
            throw new PeftException("Adapters " + merged + " are merged into the base weights, so no row of a mixed batch can run without "
                    + "them: unmerge() first");
        }
        for (MethodAdapter part : adapter.parts()) {
            if (!part.supportsMixedBatches()) {
                throw new PeftException("Adapter '" + name + "' uses " + part.method().name() + ", which mixed batches cannot route "
                        + "per row; they serve LoRA and bottleneck adapters");
            }
        }
        return adapter.id();
    }

    private List<MethodAdapter> allParts() {
        return adapters.values().stream().flatMap(adapter -> adapter.parts().stream()).toList();
    }

    private List<MethodAdapter> activeParts() {
        return active.stream().flatMap(name -> adapters.get(name).parts().stream()).toList();
    }

    /** Puts every part's gates and every trained module's values in line with the active adapters. */
    private void applyActivation() {
        boolean disabled = owner.adaptersDisabled();
        for (Adapter adapter : adapters.values()) {
            boolean on = !disabled && active.contains(adapter.name());
            adapter.parts().forEach(part -> part.setActive(on));
        }
        modules.activate(active, disabled);
    }

    // ---- views ----

    /** The model this PEFT view was attached to. */
    public Object root() {
        return root;
    }

    /** The methods of every adapter. */
    public Set<PeftMethod> methods() {
        Set<PeftMethod> methods = new LinkedHashSet<>();
        allParts().forEach(part -> methods.add(part.method()));
        return methods;
    }

    /** The graph the model's parameters live in; fails if there is not exactly one. */
    public SameDiff sameDiff() {
        if (graphs.size() != 1) {
            throw new PeftException("The model spans " + graphs.size() + " SameDiff graphs; peft4j expects one"
                    + (graphs.isEmpty() ? " (its layers hold INDArray weights, which are for eager inference only)" : ""));
        }
        return graphs.iterator().next();
    }

    /**
     * Trainable and total parameters, counted as Hugging Face PEFT does: trainable are the active
     * adapters and their trained extra modules, total the base and every adapter. Bottleneck modules
     * are sized by their layer's output, so they count once the graph is built.
     */
    public ParameterCount parameterCount() {
        long base = eagerBaseParameters;
        Set<String> owned = ownedVariables();
        for (SameDiff sd : graphs) {
            recordBaseParameters(sd);
            Set<String> names = baseParameters.get(sd);
            for (SDVariable variable : sd.variables()) {
                if (names.contains(variable.name()) && !owned.contains(variable.name()) && variable.getArr() != null) {
                    base += variable.getArr().length();
                }
            }
        }
        long adapterParameters = allParts().stream().mapToLong(MethodAdapter::parameterCount).sum();
        long trainable = activeParts().stream().mapToLong(MethodAdapter::parameterCount).sum() + modules.liveParameters(active);
        return new ParameterCount(trainable, base + adapterParameters);
    }

    /** Prints Hugging Face PEFT's trainable-parameter line to standard output. */
    public void printTrainableParameters() {
        System.out.println(parameterCount());
    }

    private Set<String> ownedVariables() {
        Set<String> owned = new HashSet<>(retired);
        allParts().forEach(part -> owned.addAll(part.variableNames()));
        return owned;
    }

    /** Remembers the graph's trainable variables that no adapter owns as base parameters, before anything freezes them. */
    private void recordBaseParameters(SameDiff sd) {
        Set<String> names = baseParameters.computeIfAbsent(sd, unused -> new HashSet<>());
        Set<String> owned = ownedVariables();
        for (SDVariable variable : sd.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE && !owned.contains(variable.name())) {
                names.add(variable.name());
            }
        }
    }

    // ---- training ----

    /**
     * Trains the active adapters (and their trained extra modules) with progress printed to standard output.
     *
     * @see #train(TrainingConfig, DataSetIterator, int, ProgressListener)
     */
    public TrainingReport train(TrainingConfig config, DataSetIterator data, int epochs) {
        return train(config, data, epochs, new ProgressListener(System.out, SameDiffTrainer.DEFAULT_PROGRESS_INTERVAL));
    }

    /**
     * Trains the active adapters for {@code epochs} epochs. Everything else (the base, inactive adapters,
     * base variables created since attaching) is frozen first; dropout is on only for this call.
     *
     * @throws PeftException if an adapter is merged or none is active, or if an active adapter's layer never
     *                       joined the graph (it was built before the adapter existed, or the agent is missing)
     */
    public TrainingReport train(TrainingConfig config, DataSetIterator data, int epochs, ProgressListener progress) {
        return train(config, new MultiDataSetIteratorAdapter(data), epochs, progress);
    }

    /** As {@link #train(TrainingConfig, MultiDataSetIterator, int, ProgressListener, TrainingOptions)}, for graphs with one input. */
    public TrainingReport train(TrainingConfig config, DataSetIterator data, int epochs, ProgressListener progress,
                                TrainingOptions options) {
        return train(config, new MultiDataSetIteratorAdapter(data), epochs, progress, options);
    }

    /** As {@link #train(TrainingConfig, DataSetIterator, int, ProgressListener)}, for graphs with several inputs. */
    public TrainingReport train(TrainingConfig config, MultiDataSetIterator data, int epochs, ProgressListener progress) {
        return train(config, data, epochs, progress, TrainingOptions.defaults());
    }

    /**
     * As {@link #train(TrainingConfig, MultiDataSetIterator, int, ProgressListener)}, with checkpoints every
     * N steps, resuming from the newest one, and the non-finite guard as {@code options} say. A checkpoint
     * holds every adapter in PEFT's format (with trained modules), the optimizer state, the iteration and
     * epoch counts, the position in the epoch and the random generator's state; resuming a run that
     * was killed continues it exactly, given the same data in the same order.
     */
    public TrainingReport train(TrainingConfig config, MultiDataSetIterator data, int epochs, ProgressListener progress,
                                TrainingOptions options) {
        SameDiff sd = prepareTraining("train()");
        List<MethodAdapter> training = activeParts();
        training.forEach(part -> part.setTraining(true));
        try {
            return SameDiffTrainer.fit(sd, config, data, epochs, progress, options, checkpointState(sd));
        } finally {
            training.forEach(part -> part.setTraining(false));
        }
    }

    /**
     * Prepares a training loop of one's own (e.g. data-parallel): the active adapters and their trained
     * modules become the only trainable variables and dropout is on until the returned mode closes. Build
     * the graph and its loss first. {@link ParameterUpdater} applies steps as {@code train(...)} would.
     */
    public TrainingMode trainingMode() {
        SameDiff sd = prepareTraining("trainingMode()");
        List<MethodAdapter> training = activeParts();
        training.forEach(part -> part.setTraining(true));
        return new TrainingMode(sd, () -> training.forEach(part -> part.setTraining(false)));
    }

    /** The checks every way of training shares, then the freeze; returns the graph. */
    private SameDiff prepareTraining(String what) {
        requireAttached();
        if (isMerged()) {
            throw new PeftException("Cannot train a merged model: call unmerge() first");
        }
        if (owner.adaptersDisabled()) {
            throw new PeftException("Cannot train while adapters are disabled: close the disableAdapters() scope first");
        }
        if (active.isEmpty()) {
            throw new PeftException("No adapter is active: setAdapter(name) first; adapters are " + adapters.keySet());
        }
        SameDiff sd;
        try {
            sd = sameDiff();
        } catch (PeftException e) {
            throw new PeftException(what + " needs the model in one SameDiff graph: " + e.getMessage(), e);
        }
        List<String> unwired = activeParts().stream().flatMap(part -> part.unwiredLayers().stream()).toList();
        if (!unwired.isEmpty()) {
            throw new PeftException("The adapters of " + unwired + " never joined the graph: build the graph (call the "
                    + "model's forward) after PeftModel.attach() and after adding the adapter, in a JVM started with "
                    + "-javaagent:peft4j-agent.jar or after PeftAgent.install()");
        }
        freezeForTraining();
        return sd;
    }

    /** What a training checkpoint keeps of this model: every adapter, lossless (F64 for fp64 models). */
    private TrainingCheckpoints.ModelState checkpointState(SameDiff sd) {
        boolean wide = activeParts().stream().flatMap(part -> part.variableNames().stream())
                .anyMatch(name -> sd.getVariable(name).dataType() == DataType.DOUBLE);
        CheckpointOptions options = CheckpointOptions.defaults().withStoreAs(wide ? TensorDtype.F64 : TensorDtype.F32);
        return new TrainingCheckpoints.ModelState() {
            @Override
            public void save(Path directory) {
                PeftModel.this.save(directory, options);
            }

            @Override
            public void load(Path directory) {
                for (String name : adapterNames()) {
                    PeftModel.this.load(directory, options.withAdapterName(name));
                }
            }
        };
    }

    /** Makes the active adapters' variables and their trained modules the only trainable variables. */
    private void freezeForTraining() {
        Set<String> trainable = new HashSet<>(modules.liveVariablesOf(active));
        activeParts().forEach(part -> trainable.addAll(part.variableNames()));
        for (SameDiff sd : graphs) {
            recordBaseParameters(sd);
            List<SDVariable> freeze = new ArrayList<>();
            List<SDVariable> thaw = new ArrayList<>();
            for (SDVariable variable : sd.variables()) {
                if (variable.getVariableType() == VariableType.VARIABLE && !trainable.contains(variable.name())) {
                    freeze.add(variable);
                } else if (variable.getVariableType() == VariableType.CONSTANT && trainable.contains(variable.name())) {
                    thaw.add(variable);
                }
            }
            if (!freeze.isEmpty()) {
                sd.convertToConstants(freeze);
            }
            if (!thaw.isEmpty()) {
                sd.convertToVariables(thaw);
            }
        }
    }

    // ---- merging ----

    /**
     * Folds the active adapters into the base weights ({@code W += s·A·B} for LoRA). All or nothing: if
     * any layer's result would contain NaN or Inf, nothing changes. Graphs built before see the merged
     * adapters' contributions switched off; forward calls made while merged add none, so a graph built
     * now has exactly the base model's cost. Methods that cannot merge (bottleneck, prompt, prefix) are refused.
     */
    public void merge() {
        merge(active.toArray(new String[0]));
    }

    /** Folds the named adapters into the base weights; see {@link #merge()}. */
    public void merge(String... names) {
        requireAttached();
        List<MethodAdapter> parts = new ArrayList<>();
        for (String name : names) {
            parts.addAll(require(name).parts());
        }
        for (MethodAdapter part : parts) {
            if (!part.mergeable()) {
                part.merge(); // throws the method's own explanation
            }
        }
        List<MethodAdapter> done = new ArrayList<>();
        try {
            for (MethodAdapter part : parts) {
                if (!part.merged()) {
                    part.merge();
                    done.add(part);
                }
            }
        } catch (RuntimeException e) {
            for (int i = done.size() - 1; i >= 0; i--) {
                done.get(i).unmerge();
            }
            throw e;
        }
    }

    /** Subtracts exactly what {@link #merge()} added, for every merged adapter, and switches them back on. */
    public void unmerge() {
        requireAttached();
        allParts().stream().filter(MethodAdapter::merged).forEach(MethodAdapter::unmerge);
    }

    /** Whether any adapter is merged into the base weights. */
    public boolean isMerged() {
        return allParts().stream().anyMatch(MethodAdapter::merged);
    }

    /**
     * Merges the active adapters, then removes every adapter from the model and gives back its base
     * variables as trainable variables: the model is the plain base with merged weights (and the active
     * adapter's trained extra modules), for deployment without the agent. This {@code PeftModel} is
     * detached afterwards. Build deployment graphs anew; graphs built with adapters keep their (now
     * switched-off) adapter variables.
     */
    public Object mergeAndUnload() {
        merge();
        for (MethodAdapter part : allParts()) {
            retired.addAll(part.variableNames());
            part.remove();
        }
        for (SameDiff sd : graphs) {
            Set<String> names = baseParameters.getOrDefault(sd, Set.of());
            List<SDVariable> thaw = sd.variables().stream()
                    .filter(variable -> variable.getVariableType() == VariableType.CONSTANT && names.contains(variable.name())).toList();
            if (!thaw.isEmpty()) {
                sd.convertToVariables(thaw);
            }
        }
        adapters.clear();
        active.clear();
        detached = true;
        return root;
    }

    // ---- checkpoints ----

    /**
     * Saves every adapter to {@code dir} in Hugging Face PEFT's layout ({@code default} in {@code dir},
     * others in {@code dir/<name>}), F32; returns the adapter's directory when there is one adapter,
     * else {@code dir}. See {@link AdapterCheckpoint}.
     */
    public Path save(Path dir) {
        return save(dir, CheckpointOptions.defaults());
    }

    /** As {@link #save(Path)}, with {@code options} (one adapter only, BF16, layer names, ...). */
    public Path save(Path dir, CheckpointOptions options) {
        requireAttached();
        List<String> names = options.adapterName() == null ? adapterNames() : List.of(require(options.adapterName()).name());
        if (names.isEmpty()) {
            throw new CheckpointException(dir, "the model has no adapter to save");
        }
        CheckpointKeys keys = options.keys();
        Path written = dir;
        for (String name : names) {
            Adapter adapter = adapters.get(name);
            MethodAdapter part = singlePart(adapter, dir);
            written = AdapterCheckpoint.write(dir, new AdapterCheckpoint.Contents(name, part.method().peftType(), part.state(options),
                    modules.modules(name, keys), modules.tensors(name, keys),
                    options.taskType() != null ? options.taskType() : adapter.taskType(),
                    options.baseModel() != null ? options.baseModel() : adapter.baseModel()), options.storeAs());
        }
        return names.size() == 1 ? written : dir;
    }

    private static MethodAdapter singlePart(Adapter adapter, Path where) {
        if (adapter.parts().size() != 1) {
            throw new CheckpointException(where, "adapter '" + adapter.name() + "' uses "
                    + adapter.parts().stream().map(part -> part.method().name()).toList() + ", and a PEFT adapter directory holds one "
                    + "method: give each method its own adapter (PeftModel.builder(model).only(LoRA.class), then "
                    + "addAdapter(name, AdapterOptions.defaults().withMethods(...))) and save them together");
        }
        return adapter.parts().get(0);
    }

    /** Loads adapter {@code default} saved in {@code dir} (as {@link #save} wrote it, or PEFT) into adapter {@code default}. */
    public void load(Path dir) {
        load(dir, CheckpointOptions.defaults());
    }

    /**
     * Loads the adapter saved under {@code dir} in PEFT's layout into the model's adapter of the same name
     * ({@code options.adapterName()}, {@code default} if not given), which must have the same layers and
     * ranks. Nothing is written unless every check passes.
     */
    public void load(Path dir, CheckpointOptions options) {
        requireAttached();
        String name = options.adapterName() != null ? options.adapterName() : AdapterCheckpoint.DEFAULT_ADAPTER;
        Adapter adapter = require(name);
        if (adapter.parts().stream().anyMatch(MethodAdapter::merged)) {
            throw new CheckpointException(dir, "adapter '" + name + "' is merged into the model's weights: call unmerge() before loading");
        }
        MethodAdapter part = singlePart(adapter, dir);
        SavedAdapter saved = AdapterCheckpoint.read(AdapterCheckpoint.directoryOf(dir, name), name, options.keys(), options.allowNonFinite());
        if (!saved.peftType().equals(part.method().peftType())) {
            throw new CheckpointException(saved.configFile(), "holds a " + saved.peftType() + " adapter, but adapter '" + name + "' is "
                    + part.method().peftType());
        }
        Runnable writeAdapter = part.prepareLoad(saved);
        Runnable writeHeads = modules.prepareLoad(name, saved);
        writeAdapter.run();
        writeHeads.run();
    }

    /**
     * Stops adding adapters to later forward calls of this model's layers (typically after
     * {@link #merge()}, before building a deployment graph). Graphs already built keep their adapters as
     * they are now.
     */
    public void detach() {
        allParts().forEach(MethodAdapter::detach);
        detached = true;
    }

    private void requireAttached() {
        if (detached) {
            throw new PeftException("This PeftModel was detached from " + root.getClass().getName());
        }
    }
}
