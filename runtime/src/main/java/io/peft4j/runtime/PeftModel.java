package io.peft4j.runtime;

import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.CheckpointOptions;
import io.peft4j.runtime.internal.Attacher;
import io.peft4j.runtime.internal.Attachment;
import io.peft4j.runtime.internal.BottleneckAdapter;
import io.peft4j.runtime.internal.GraphFreezer;
import io.peft4j.runtime.internal.LoraBranch;
import io.peft4j.runtime.internal.LoraSettings;
import io.peft4j.runtime.internal.PrefixTuner;
import io.peft4j.runtime.internal.PromptEmbedding;
import io.peft4j.runtime.spi.LoraMerge;
import io.peft4j.runtime.spi.WeightAccessor;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashSet;
import java.util.IdentityHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;

/**
 * A model with LoRA branches attached to its {@code @LoRA} layers.
 *
 * <pre>{@code
 * SameDiff sd = SameDiff.create();
 * MyModel model = new MyModel(sd);                 // layers create their weights
 * PeftModel peft = PeftModel.attach(model);        // A [in, r], B [r, out] = 0; everything else frozen
 * SDVariable logits = model.forward(input);        // adapted layers now add x·A·s·B
 * peft.train(trainingConfig, trainData, epochs);   // only A and B change
 * peft.merge();                                    // W += s·A·B, then deploy without the agent
 * }</pre>
 *
 * <p>Attach before the graph is built: the branch joins each adapted layer's forward call made
 * afterwards. Layers are named by their field path from the root. A layer's {@code @LoRA}
 * comes from its field if the field is annotated, else from its class.
 */
public final class PeftModel {

    private final Object root;
    private final Map<String, LoraBranch> branches;
    private final Map<String, WeightAccessor<Object>> accessors;
    private final Map<String, BottleneckAdapter> adapters;
    private final Map<String, PromptEmbedding> prompts;
    private final PrefixTuner prefixes;
    private final Set<String> alsoTrainable;
    private final Set<SameDiff> graphs;
    private final Map<SameDiff, Long> frozenParameters = new IdentityHashMap<>();
    private final long eagerBaseParameters;
    private boolean merged;
    private boolean detached;

    private PeftModel(Object root, Attachment attachment) {
        this.root = root;
        this.branches = attachment.branches();
        this.accessors = attachment.accessors();
        this.adapters = attachment.adapters();
        this.prompts = attachment.prompts();
        this.prefixes = attachment.prefixes();
        this.alsoTrainable = attachment.alsoTrainable();
        this.graphs = attachment.graphs();
        this.eagerBaseParameters = attachment.eagerBaseParameters();
    }

    /**
     * Attaches LoRA to every {@code @LoRA} layer and a bottleneck adapter to every {@code @Adapter}
     * layer reachable from {@code root}, with seed 42 for the initialisations.
     */
    public static PeftModel attach(Object root) {
        return builder(root).attach();
    }

    public static Builder builder(Object root) {
        return new Builder(root);
    }

    /** Options for {@link PeftModel#attach}. */
    public static final class Builder {
        private final Object root;
        private long seed = 42;
        private final List<String> alsoTrain = new ArrayList<>();
        private Set<PeftMethod> methods = java.util.EnumSet.allOf(PeftMethod.class);
        private Integer virtualTokens;
        private java.util.function.Function<String, int[]> promptTokenizer;

        private Builder(Object root) {
            if (root == null) {
                throw new PeftException("Cannot attach PEFT to a null model");
            }
            this.root = root;
        }

        /** The seed of lora_A's kaiming-uniform init. */
        public Builder seed(long seed) {
            this.seed = seed;
            return this;
        }

        /**
         * Keeps every SameDiff variable under these field paths trainable, like Hugging Face PEFT's
         * {@code modules_to_save} (typically a new classifier head).
         */
        public Builder alsoTrain(String... paths) {
            alsoTrain.addAll(List.of(paths));
            return this;
        }

        /**
         * Activates only these methods' annotations (all by default): one model annotated for several
         * methods can be adapted by each in turn.
         */
        public Builder only(PeftMethod... selected) {
            if (selected.length == 0) {
                throw new IllegalArgumentException("choose at least one PEFT method");
            }
            this.methods = java.util.EnumSet.copyOf(List.of(selected));
            return this;
        }

        /** Overrides the annotations' {@code virtualTokens} for prompt and prefix tuning (0 switches them off). */
        public Builder virtualTokens(int count) {
            if (count < 0) {
                throw new IllegalArgumentException("virtual tokens must not be negative, got " + count);
            }
            this.virtualTokens = count;
            return this;
        }

        /** Turns {@code @PromptTuning(init = TEXT, text = ...)} text into token ids of the model's vocabulary. */
        public Builder promptTokenizer(java.util.function.Function<String, int[]> tokenizer) {
            this.promptTokenizer = tokenizer;
            return this;
        }

        public PeftModel attach() {
            Attachment attachment = Attacher.attach(root, new Attacher.Options(seed, List.copyOf(alsoTrain), methods, virtualTokens,
                    promptTokenizer));
            PeftModel model = new PeftModel(root, attachment);
            model.freeze();
            return model;
        }
    }

    /** Freezes every base variable of the model's graphs (idempotent; adapters created since stay trainable). */
    private void freeze() {
        Set<String> trainable = trainableNames();
        for (SameDiff sameDiff : sameDiffs()) {
            long frozenNow = GraphFreezer.freezeAllExcept(sameDiff, trainable).stream()
                    .mapToLong(variable -> variable.getArr().length()).sum();
            frozenParameters.merge(sameDiff, frozenNow, Long::sum);
        }
    }

    private Set<String> trainableNames() {
        Set<String> names = new HashSet<>(alsoTrainable);
        branches.values().forEach(branch -> names.addAll(branch.variableNames()));
        adapters.values().forEach(adapter -> names.addAll(adapter.variableNames()));
        prompts.values().stream().filter(prompt -> prompt.prompt() != null).forEach(prompt -> names.add(prompt.prompt().name()));
        if (prefixes != null) {
            names.addAll(prefixes.variableNames());
        }
        return names;
    }

    private Set<SameDiff> sameDiffs() {
        Set<SameDiff> all = Collections.newSetFromMap(new IdentityHashMap<>());
        all.addAll(graphs);
        adapters.values().stream().map(BottleneckAdapter::sameDiff).filter(java.util.Objects::nonNull).forEach(all::add);
        return all;
    }

    /** The model this PEFT view was attached to. */
    public Object root() {
        return root;
    }

    /** The adapted layers, in field order. */
    public List<LoraLayer> layers() {
        return branches.values().stream().map(this::view).toList();
    }

    /** The adapted layer at {@code path}. */
    public LoraLayer layer(String path) {
        LoraBranch branch = branches.get(path);
        if (branch == null) {
            throw new PeftException("No adapted layer at '" + path + "'; adapted layers are " + branches.keySet());
        }
        return view(branch);
    }

    /** The bottleneck adapters by path (their variables exist once the graph is built or an adapter is loaded). */
    public Map<String, BottleneckAdapter> bottleneckAdapters() {
        return java.util.Collections.unmodifiableMap(adapters);
    }

    /** The graph the model's parameters live in; fails if there is not exactly one. */
    public SameDiff sameDiff() {
        Set<SameDiff> all = sameDiffs();
        if (all.size() != 1) {
            throw new PeftException("The model spans " + all.size() + " SameDiff graphs; peft4j expects one");
        }
        return all.iterator().next();
    }

    /** The prompt-tuned embedding layers by path. */
    public Map<String, PromptEmbedding> promptEmbeddings() {
        return java.util.Collections.unmodifiableMap(prompts);
    }

    /** Prefix tuning of the model's attention layers, or {@code null} if no {@code @PrefixTuning} is active. */
    public PrefixTuner prefixTuning() {
        return prefixes;
    }

    /** The methods this model has adapters of. */
    public Set<PeftMethod> methods() {
        Set<PeftMethod> active = java.util.EnumSet.noneOf(PeftMethod.class);
        if (!branches.isEmpty()) {
            active.add(PeftMethod.LORA);
        }
        if (!adapters.isEmpty()) {
            active.add(PeftMethod.ADAPTER);
        }
        if (!prompts.isEmpty()) {
            active.add(PeftMethod.PROMPT_TUNING);
        }
        if (prefixes != null) {
            active.add(PeftMethod.PREFIX_TUNING);
        }
        return active;
    }

    /** The bottleneck adapters, in field order. */
    public List<AdapterLayer> adapters() {
        return adapters.values().stream().map(adapter -> new AdapterLayer(adapter.path(), adapter.hidden(),
                adapter.hidden() == 0 ? 0 : adapter.settings().bottleneck(adapter.hidden()), adapter.settings().activation()))
                .toList();
    }

    private LoraLayer view(LoraBranch branch) {
        LoraSettings settings = branch.settings();
        return new LoraLayer(branch.path(), branch.layer().getClass(), branch.in(), branch.out(), settings.rank(),
                settings.alpha(), settings.dropout(), settings.rslora(), accessors.get(branch.path()).layout(), branch.weights());
    }

    /**
     * Trainable and total parameters, counted as Hugging Face PEFT does (adapters are part of the
     * total). Bottleneck adapters are sized by their layer's output, so they count once the graph is built.
     */
    public ParameterCount parameterCount() {
        long trainable = 0;
        long total = eagerBaseParameters;
        for (SameDiff sameDiff : sameDiffs()) {
            long graphTrainable = GraphFreezer.trainableParameters(sameDiff);
            trainable += graphTrainable;
            total += graphTrainable + frozenParameters.getOrDefault(sameDiff, 0L);
        }
        for (LoraBranch branch : branches.values()) {
            if (!branch.isGraph()) {
                trainable += branch.parameterCount();
                total += branch.parameterCount();
            }
        }
        return new ParameterCount(trainable, total);
    }

    /** Prints Hugging Face PEFT's trainable-parameter line to standard output. */
    public void printTrainableParameters() {
        System.out.println(parameterCount());
    }

    /**
     * Trains the adapters (and any {@code alsoTrain} layers) with progress printed to standard output.
     *
     * @see #train(TrainingConfig, DataSetIterator, int, ProgressListener)
     */
    public TrainingReport train(TrainingConfig config, DataSetIterator data, int epochs) {
        return train(config, data, epochs, new ProgressListener(System.out, SameDiffTrainer.DEFAULT_PROGRESS_INTERVAL));
    }

    /**
     * Trains the adapters for {@code epochs} epochs. Base variables created since attaching are
     * frozen first; LoRA dropout is active only for the duration of this call.
     *
     * @throws PeftException if the model is merged, or if an adapted layer's forward method never ran
     *                       through peft4j (the graph was built before attaching, or the agent is missing)
     */
    public TrainingReport train(TrainingConfig config, DataSetIterator data, int epochs, ProgressListener progress) {
        return train(config, new org.nd4j.linalg.dataset.adapter.MultiDataSetIteratorAdapter(data), epochs, progress);
    }

    /** As {@link #train(TrainingConfig, DataSetIterator, int, ProgressListener)}, for graphs with several inputs. */
    public TrainingReport train(TrainingConfig config, org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator data, int epochs,
                                ProgressListener progress) {
        requireAttached();
        if (merged) {
            throw new PeftException("Cannot train a merged model: call unmerge() first");
        }
        List<SameDiff> trainedGraphs = new ArrayList<>(sameDiffs());
        if (trainedGraphs.size() != 1) {
            throw new PeftException("train() needs the model in one SameDiff graph, found " + trainedGraphs.size()
                    + (trainedGraphs.isEmpty() ? " (the adapted layers hold INDArray weights, which are for eager inference only)" : ""));
        }
        List<String> unwired = new ArrayList<>();
        branches.values().stream().filter(branch -> branch.graphUses() == 0).forEach(branch -> unwired.add(branch.path()));
        adapters.values().stream().filter(adapter -> adapter.graphUses() == 0).forEach(adapter -> unwired.add(adapter.path()));
        prompts.values().stream().filter(prompt -> prompt.graphUses() == 0).forEach(prompt -> unwired.add(prompt.path()));
        if (prefixes != null && prefixes.graphUses() == 0) {
            prefixes.sites().forEach(site -> unwired.add(site.path()));
        }
        if (!unwired.isEmpty()) {
            throw new PeftException("The adapters of " + unwired + " never joined the graph: build the graph (call the "
                    + "model's forward) after PeftModel.attach(), in a JVM started with -javaagent:peft4j-agent.jar or after "
                    + "PeftAgent.install()");
        }
        freeze();
        branches.values().forEach(branch -> branch.setTraining(true));
        try {
            return SameDiffTrainer.fit(trainedGraphs.get(0), config, data, epochs, progress);
        } finally {
            branches.values().forEach(branch -> branch.setTraining(false));
        }
    }

    /**
     * Folds every LoRA branch into its layer's weight ({@code W += s·A·B}) through the generated
     * accessors. All or nothing: if any layer's result would contain NaN or Inf, the layers merged
     * so far are unmerged and nothing changes. Afterwards forward calls add no branch, and graphs
     * built before see the branch scaled to zero. Bottleneck adapters cannot be merged and stay.
     */
    public void merge() {
        requireAttached();
        if (merged) {
            return;
        }
        List<String> done = new ArrayList<>();
        try {
            for (Map.Entry<String, LoraBranch> entry : branches.entrySet()) {
                LoraMerge.merge(weightOf(entry.getKey()), entry.getValue().weights(), accessors.get(entry.getKey()).layout(),
                        weightName(entry.getKey()));
                done.add(entry.getKey());
            }
        } catch (RuntimeException e) {
            for (String path : done) {
                LoraMerge.unmerge(weightOf(path), branches.get(path).weights(), accessors.get(path).layout(), weightName(path));
            }
            throw e;
        }
        branches.values().forEach(branch -> branch.setMerged(true));
        merged = true;
    }

    /** Subtracts exactly the delta that {@link #merge()} added and switches the branches back on. */
    public void unmerge() {
        requireAttached();
        if (!merged) {
            return;
        }
        for (Map.Entry<String, LoraBranch> entry : branches.entrySet()) {
            LoraMerge.unmerge(weightOf(entry.getKey()), entry.getValue().weights(), accessors.get(entry.getKey()).layout(),
                    weightName(entry.getKey()));
        }
        branches.values().forEach(branch -> branch.setMerged(false));
        merged = false;
    }

    public boolean isMerged() {
        return merged;
    }

    /**
     * Saves the adapter to {@code dir} in Hugging Face PEFT's format ({@code adapter_config.json},
     * {@code adapter_model.safetensors}, F32); see {@link AdapterCheckpoint}.
     */
    public Path save(Path dir) {
        return save(dir, CheckpointOptions.defaults());
    }

    public Path save(Path dir, CheckpointOptions options) {
        requireAttached();
        return AdapterCheckpoint.save(this, dir, options);
    }

    /** Loads an adapter saved by {@link #save} or by Hugging Face PEFT for the same layers. */
    public void load(Path dir) {
        load(dir, CheckpointOptions.defaults());
    }

    public void load(Path dir, CheckpointOptions options) {
        requireAttached();
        AdapterCheckpoint.load(this, dir, options);
        // Loaded prefixes replace a projection MLP, whose parameters are then frozen with the base.
        freeze();
    }

    /**
     * Stops adding branches to later forward calls of this model's layers (typically after
     * {@link #merge()}, before building a deployment graph in another SameDiff). Graphs already built
     * keep their branch variables.
     */
    public void detach() {
        branches.values().forEach(LoraBranch::unregister);
        adapters.values().forEach(BottleneckAdapter::unregister);
        prompts.values().forEach(PromptEmbedding::unregister);
        if (prefixes != null) {
            prefixes.unregister();
        }
        detached = true;
    }

    private void requireAttached() {
        if (detached) {
            throw new PeftException("This PeftModel was detached from " + root.getClass().getName());
        }
    }

    private Object weightOf(String path) {
        return accessors.get(path).weight(branches.get(path).layer());
    }

    private String weightName(String path) {
        return path + "." + accessors.get(path).weightName();
    }
}
