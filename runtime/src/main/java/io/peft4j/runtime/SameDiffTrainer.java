package io.peft4j.runtime;

import io.peft4j.runtime.internal.CheckpointListener;
import io.peft4j.runtime.internal.ElementwiseGradientPruner;
import io.peft4j.runtime.internal.GradientGraphSimplifier;
import io.peft4j.runtime.internal.LossGradientChainRule;
import io.peft4j.runtime.internal.LoraPlus;
import io.peft4j.runtime.internal.MatMulGradientPruner;
import io.peft4j.runtime.internal.Nd4jOutput;
import io.peft4j.runtime.internal.NonFiniteGuard;
import io.peft4j.runtime.internal.Placeholders;
import io.peft4j.runtime.internal.RandomOpSeeder;
import io.peft4j.runtime.internal.RecordedTraining;
import io.peft4j.runtime.internal.ReplayKernels;
import io.peft4j.runtime.internal.SkippingIterator;
import io.peft4j.runtime.internal.TrainableVariables;
import io.peft4j.runtime.internal.TrainingCheckpoints;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.nd4j.autodiff.listeners.Listener;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.adapter.MultiDataSetIteratorAdapter;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Trains a SameDiff graph's trainable variables with a {@link TrainingConfig} over a
 * {@link DataSetIterator}, printing progress.
 *
 * <p>Used as is for full fine-tuning; {@link PeftModel#train} freezes the base model first so that
 * only the adapters are trained. Before the first step the gradient graph is pruned: a matrix product
 * computes only the operand gradients that are used ({@link MatMulGradientPruner}), so frozen weights,
 * and inputs with nothing trainable upstream, cost no gradient GEMMs; a broadcast sum or product with
 * a frozen bias or scale skips that parameter's gradient ({@link ElementwiseGradientPruner}, which
 * takes activation shapes from one forward pass over the first batch, when the data can be reset).
 * Then the gradient graph is simplified ({@link GradientGraphSimplifier}, reported as a
 * {@link GraphSimplification} to the progress listener), so that a step skips shape ops, identities
 * and sums with zeros whose results it already has. Steps then run in SameDiff's own loop, each
 * step after the first of its batch shape replayed from a recording of that first one
 * ({@link #RECORDED_STEPS}). The number of native threads is set first ({@link ComputeThreads}). For AdamW, use {@code Adam} with
 * {@code TrainingConfig.Builder.weightDecay(coefficient, true)}: ND4J's {@code WeightDecay} is
 * decoupled from the gradient, as in AdamW.
 */
public final class SameDiffTrainer {

    /**
     * Set this system property to {@code true} to train on SameDiff's unpruned gradient graph (every
     * matrix product, sum and product computes both operand gradients), to measure what the pruning saves.
     */
    public static final String COMPUTE_UNUSED_GRADIENTS = "peft4j.computeUnusedGradients";

    /**
     * Set this system property to {@code false} to train on the gradient graph as SameDiff and the
     * pruning leave it, without {@link GraphSimplification}'s rewrites (duplicate shape ops merged,
     * identities and sums with zeros bypassed, reshape chains shortened), to measure what they save or
     * to rule them out.
     */
    public static final String SIMPLIFY_GRAPHS = "peft4j.simplifyGraphs";

    /**
     * Set this system property to {@code false} to run every training step in SameDiff's executor.
     * By default the first step of each batch shape runs there and is recorded op by op, and later
     * steps of that shape replay the recorded ops with native contexts and buffers allocated once,
     * without SameDiff's per-op scheduling and allocation ({@link RecordedTraining}); values, updates
     * and listener calls are SameDiff's. Graphs with random ops or control flow always run in SameDiff.
     */
    public static final String RECORDED_STEPS = "peft4j.recordedSteps";
    /**
     * System property: {@code false} keeps replayed steps and eager sessions ({@link EagerSession}) on
     * libnd4j's kernels instead of peft4j's Vector API kernels, which need
     * {@code --add-modules jdk.incubator.vector} ({@link ReplayKernels}); read when a step is recorded or
     * a session is created.
     */
    public static final String VECTOR_KERNELS = ReplayKernels.PROPERTY;
    /**
     * System property: {@code false} runs each op of BERT's written-out exact GELU and of its gradient
     * on its own kernel instead of one fused pass per group ({@link ReplayKernels}).
     */
    public static final String FUSED_KERNELS = ReplayKernels.FUSION_PROPERTY;
    /**
     * System property: {@code false} keeps matrix products of arrays of rank 3 or more (attention's
     * scores and context, and their gradients) in libnd4j and matrix products with a short side
     * (LoRA's factors, up to rank 16, and their gradients) in BLAS, instead of peft4j's kernels
     * ({@link ReplayKernels}).
     */
    public static final String PRODUCT_KERNELS = ReplayKernels.PRODUCT_PROPERTY;
    /**
     * System property: {@code false} keeps Adam's updates of the trainable parameters in libnd4j (its
     * {@code adam_updater} and a subtraction per parameter) instead of one kernel pass each
     * ({@link ReplayKernels}); the values are the same bit for bit.
     */
    public static final String OPTIMIZER_KERNELS = ReplayKernels.OPTIMIZER_PROPERTY;

    /** Progress lines go here every this many steps by default. */
    public static final int DEFAULT_PROGRESS_INTERVAL = 25;

    private SameDiffTrainer() {
    }

    /** Trains for {@code epochs} epochs, printing progress to standard output. */
    public static TrainingReport fit(SameDiff sameDiff, TrainingConfig config, DataSetIterator data, int epochs) {
        return fit(sameDiff, config, data, epochs, new ProgressListener(System.out, DEFAULT_PROGRESS_INTERVAL));
    }

    /** Trains for {@code epochs} epochs, reporting to {@code progress}. */
    public static TrainingReport fit(SameDiff sameDiff, TrainingConfig config, DataSetIterator data, int epochs,
                                     ProgressListener progress) {
        return fit(sameDiff, config, new MultiDataSetIteratorAdapter(data), epochs, progress);
    }

    /** Trains a graph with several inputs (features mapped in order to {@code dataSetFeatureMapping}). */
    public static TrainingReport fit(SameDiff sameDiff, TrainingConfig config, MultiDataSetIterator data, int epochs,
                                     ProgressListener progress) {
        return fit(sameDiff, config, data, epochs, progress, TrainingOptions.defaults());
    }

    /**
     * Trains every trainable variable of {@code sameDiff} with checkpoints, resuming and the non-finite
     * guard of {@code options}; a checkpoint stores the trainable variables
     * ({@code model/variables.safetensors}) with the optimizer state.
     */
    public static TrainingReport fit(SameDiff sameDiff, TrainingConfig config, MultiDataSetIterator data, int epochs,
                                     ProgressListener progress, TrainingOptions options) {
        return fit(sameDiff, config, data, epochs, progress, options, new TrainableVariables(sameDiff));
    }

    static TrainingReport fit(SameDiff sameDiff, TrainingConfig config, MultiDataSetIterator data, int epochs, ProgressListener progress,
                              TrainingOptions options, TrainingCheckpoints.ModelState model) {
        // ND4J prints a line per differentiated op while it builds the gradient graph.
        return Nd4jOutput.quiet(() -> train(sameDiff, config, data, epochs, progress, options, model));
    }

    private static TrainingReport train(SameDiff sameDiff, TrainingConfig config, MultiDataSetIterator data, int epochs,
                                        ProgressListener progress, TrainingOptions options, TrainingCheckpoints.ModelState model) {
        if (epochs <= 0) {
            throw new IllegalArgumentException("epochs must be positive, got " + epochs);
        }
        ComputeThreads.apply();
        OpenBlasKernels.warnIfSlow();
        requestLossValues(sameDiff, config);
        TrainingCheckpoints checkpoints = options.checkpointDirectory() == null ? null
                : new TrainingCheckpoints(options.checkpointDirectory(), options.keepCheckpoints(), model);
        TrainingCheckpoints.Resumed resumed = options.resume() ? checkpoints.latest().orElse(null) : null;
        if (resumed != null) {
            checkpoints.restoreModel(resumed);
            config.setIterationCount(resumed.position().iterationCount());
            config.setEpochCount(resumed.position().epochCount());
            Nd4j.getRandom().setStates(resumed.position().rngRoot(), resumed.position().rngNode());
            progress.resumedAt(resumed.position().iterationCount(), resumed.directory());
        }
        sameDiff.setTrainingConfig(config);
        Supplier<Map<String, INDArray>> firstBatch = data.resetSupported() ? new FirstBatch(config, data) : null;
        progress.lossGradientsCorrected(LossGradientChainRule.apply(sameDiff));
        if (!Boolean.getBoolean(COMPUTE_UNUSED_GRADIENTS)) {
            MatMulGradientPruner.prune(sameDiff);
            if (firstBatch != null) {
                ElementwiseGradientPruner.prune(sameDiff, firstBatch);
            }
        }
        if (simplifyGraphs()) {
            progress.graphSimplified(GradientGraphSimplifier.simplify(sameDiff, firstBatch, replayKernels()));
        }
        if (recordedSteps()) {
            progress.replayKernels(ReplayKernels.unavailableReason());
        }
        TrainingCheckpoints.createUpdaters(sameDiff);
        if (resumed != null) {
            TrainingCheckpoints.restoreOptimizer(sameDiff, resumed);
        }
        LoraPlus.install(sameDiff, options.loraPlusRatio());
        int startBatch = resumed == null ? 0 : resumed.position().batchInEpoch();
        List<Listener> listeners = new ArrayList<>();
        // first, so that every random custom op of a step (LoRA's dropout mask) draws anew, SameDiff's or replayed
        listeners.add(new RandomOpSeeder());
        listeners.add(new NonFiniteGuard(sameDiff, options.onNonFinite()));
        if (checkpoints != null) {
            listeners.add(new CheckpointListener(sameDiff, checkpoints, options.checkpointEvery(), startBatch));
        }
        listeners.add(progress);
        Listener[] all = listeners.toArray(new Listener[0]);
        int remaining = epochs - config.getEpochCount();
        if (startBatch > 0 && remaining > 0) {
            // the rest of the interrupted epoch, then whole epochs
            SkippingIterator rest = new SkippingIterator(data, startBatch);
            if (rest.hasNext()) {
                fitEpochs(sameDiff, rest, 1, all);
            } else {
                config.incrementEpochCount();
            }
            remaining = epochs - config.getEpochCount();
            data.reset();
        }
        if (remaining > 0) {
            fitEpochs(sameDiff, data, remaining, all);
        }
        return progress.report();
    }

    /** SameDiff's own loop, or the same loop with recorded steps replayed (unless {@link #RECORDED_STEPS} is false). */
    private static void fitEpochs(SameDiff sameDiff, MultiDataSetIterator data, int epochs, Listener[] listeners) {
        if (recordedSteps()) {
            RecordedTraining.fit(sameDiff, data, epochs, listeners);
        } else {
            sameDiff.fit(data, epochs, listeners);
        }
    }

    /**
     * Whether replayed steps would run in peft4j's own kernels ({@link ReplayKernels}); asked whether or
     * not steps are replayed, so that SameDiff's steps and replayed ones run the same graph.
     */
    static boolean replayKernels() {
        return ReplayKernels.forThisProcess() != ReplayKernels.NONE;
    }

    static boolean recordedSteps() {
        return !"false".equalsIgnoreCase(System.getProperty(RECORDED_STEPS, "true"));
    }

    static boolean simplifyGraphs() {
        return !"false".equalsIgnoreCase(System.getProperty(SIMPLIFY_GRAPHS, "true"));
    }

    /**
     * The first batch's features and labels by placeholder name, read once (when first asked for; the
     * gradient rewrites that need activation shapes share it) and leaving the data reset.
     */
    private static final class FirstBatch implements Supplier<Map<String, INDArray>> {
        private final TrainingConfig config;
        private final MultiDataSetIterator data;
        private Map<String, INDArray> byName;

        FirstBatch(TrainingConfig config, MultiDataSetIterator data) {
            this.config = config;
            this.data = data;
        }

        @Override
        public Map<String, INDArray> get() {
            if (byName == null) {
                data.reset();
                MultiDataSet batch = data.next();
                data.reset();
                byName = Placeholders.of(config, batch);
            }
            return byName;
        }
    }

    /**
     * SameDiff skips a loss op in training when its backward op needs no forward value (mean squared
     * error, softmax cross-entropy), and then reports a loss of 0 to listeners. Registering each loss
     * variable as a train "evaluation" with no evaluators makes the session compute it.
     */
    static void requestLossValues(SameDiff sameDiff, TrainingConfig config) {
        List<String> losses = config.getLossVariables() != null && !config.getLossVariables().isEmpty()
                ? config.getLossVariables() : sameDiff.getLossVariables();
        for (String loss : losses) {
            config.getTrainEvaluations().putIfAbsent(loss, new ArrayList<>());
            config.getTrainEvaluationLabels().putIfAbsent(loss, 0);
        }
    }
}
