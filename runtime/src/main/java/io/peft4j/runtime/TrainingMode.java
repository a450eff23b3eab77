package io.peft4j.runtime;

import io.peft4j.runtime.internal.ElementwiseGradientPruner;
import io.peft4j.runtime.internal.GradientGraphSimplifier;
import io.peft4j.runtime.internal.LossGradientChainRule;
import io.peft4j.runtime.internal.MatMulGradientPruner;
import io.peft4j.runtime.internal.Nd4jOutput;
import io.peft4j.runtime.internal.RandomOpSeeder;
import io.peft4j.runtime.internal.RecordedTraining;
import io.peft4j.runtime.internal.TrainingCheckpoints;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Loss;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.api.MultiDataSetPreProcessor;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.schedule.ISchedule;

/**
 * A model made ready for a training loop of one's own, such as peft4j-spark's data-parallel one: the
 * active adapters and their trained modules are the graph's only trainable variables and dropout is on
 * until it closes. {@link #run} hands each step's loss and gradients to the caller, who decides the update
 * (exchange them with other workers, then apply them with {@link ParameterUpdater}).
 *
 * <p>Steps run inside SameDiff's training session, which reuses its arrays from step to step
 * (computing each step with {@code SameDiff.calculateGradients} instead left about 1 GB of native
 * memory per MiniLM step to the garbage collector, and steps took 0.6 to 7 s depending on when it
 * ran), and, as {@link SameDiffTrainer}'s do, from the third step of a batch shape on are replayed
 * from a recording of the second ({@link SameDiffTrainer#RECORDED_STEPS}), with the same gradients.
 * Gradients have the shapes of their variables, e.g. LoRA's {@code A [in, r]} and {@code B [r, out]}.
 */
public final class TrainingMode implements AutoCloseable {

    /** What the caller does with one step: {@code gradients} are valid during the call only. */
    @FunctionalInterface
    public interface Step {
        void apply(int index, double loss, Map<String, INDArray> gradients);
    }

    private final SameDiff sameDiff;
    private final List<String> trainable;
    private final Runnable end;
    private final Map<String, INDArray> captured = new LinkedHashMap<>();
    private final GradientCapture capture = new GradientCapture(captured);
    private boolean open = true;
    private int replayedSteps;

    TrainingMode(SameDiff sameDiff, Runnable end) {
        this.sameDiff = sameDiff;
        this.end = end;
        List<String> names = new ArrayList<>();
        for (SDVariable variable : sameDiff.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                names.add(variable.name());
            }
        }
        this.trainable = Collections.unmodifiableList(names);
        if (sameDiff.getLossVariables().isEmpty()) {
            throw new PeftException("The graph has no loss variable: build the loss and call sameDiff.setLossVariables(loss) "
                    + "before trainingMode()");
        }
    }

    /** The trainable variables' names, in the graph's order (the same on every JVM that builds the same graph). */
    public List<String> trainableVariables() {
        return trainable;
    }

    public SameDiff sameDiff() {
        return sameDiff;
    }

    /**
     * Computes the loss (the sum of the graph's loss variables) and the trainable variables' gradients of
     * every batch of {@code batches} (placeholder name to array; every batch names the same placeholders)
     * and hands them to {@code step}; nothing is updated unless {@code step} does it. The variables may be
     * changed in place during the call, and the next batch sees the change. Returns the number of steps.
     */
    public int run(Iterator<Map<String, INDArray>> batches, Step step) {
        if (!open) {
            throw new PeftException("This TrainingMode is closed: call peft.trainingMode() again");
        }
        if (!batches.hasNext()) {
            return 0;
        }
        Map<String, INDArray> first = batches.next();
        List<String> placeholders = new ArrayList<>(first.keySet());
        captured.clear();
        // SameDiff splits a batch into features and labels; which is which does not matter here, but the loss
        // values are only reported with a label array, so the last placeholder plays the label.
        TrainingConfig.Builder builder = TrainingConfig.builder().updater(capture);
        if (placeholders.size() > 1) {
            builder.dataSetFeatureMapping(placeholders.subList(0, placeholders.size() - 1))
                    .dataSetLabelMapping(placeholders.get(placeholders.size() - 1));
        } else {
            builder.dataSetFeatureMapping(placeholders).markLabelsUnused();
        }
        TrainingConfig config = builder.build();
        if (placeholders.size() > 1) {
            SameDiffTrainer.requestLossValues(sameDiff, config);
        }
        sameDiff.setTrainingConfig(config);
        Nd4jOutput.quiet(() -> LossGradientChainRule.apply(sameDiff));
        if (!Boolean.getBoolean(SameDiffTrainer.COMPUTE_UNUSED_GRADIENTS)) {
            Nd4jOutput.quiet(() -> {
                MatMulGradientPruner.prune(sameDiff);
                ElementwiseGradientPruner.prune(sameDiff, () -> first);
                return null;
            });
        }
        if (SameDiffTrainer.simplifyGraphs()) {
            Nd4jOutput.quiet(() -> GradientGraphSimplifier.simplify(sameDiff, () -> first, SameDiffTrainer.replayKernels()));
        }
        TrainingCheckpoints.createUpdaters(sameDiff);
        sameDiff.getUpdaterMap().forEach((name, updater) -> ((GradientCapture.Capturing) updater).capture(name));
        int[] steps = {0};
        BaseListener handOver = new BaseListener() {
            @Override
            public boolean isActive(Operation operation) {
                return operation == Operation.TRAINING;
            }

            @Override
            public void iterationDone(SameDiff sd, At at, org.nd4j.linalg.dataset.api.MultiDataSet data, Loss loss) {
                step.apply(steps[0]++, loss.totalLoss(), captured);
                captured.clear();
            }
        };
        Nd4jOutput.quiet(() -> {
            Batches all = new Batches(first, batches, placeholders);
            if (SameDiffTrainer.recordedSteps()) {
                replayedSteps += RecordedTraining.fit(sameDiff, all, 1, new RandomOpSeeder(), handOver);
            } else {
                sameDiff.fit(all, 1, new RandomOpSeeder(), handOver);
            }
            return null;
        });
        return steps[0];
    }

    /** How many steps so far were replayed from a recording rather than run in SameDiff's executor. */
    int replayedSteps() {
        return replayedSteps;
    }

    /** Switches dropout off again; the variables stay as trained. */
    @Override
    public void close() {
        if (open) {
            open = false;
            end.run();
        }
    }

    /** The batches as SameDiff's iterator, every placeholder a feature. */
    private static final class Batches implements MultiDataSetIterator {
        private Map<String, INDArray> pending;
        private final Iterator<Map<String, INDArray>> rest;
        private final List<String> placeholders;

        Batches(Map<String, INDArray> first, Iterator<Map<String, INDArray>> rest, List<String> placeholders) {
            this.pending = first;
            this.rest = rest;
            this.placeholders = placeholders;
        }

        @Override
        public boolean hasNext() {
            return pending != null || rest.hasNext();
        }

        @Override
        public MultiDataSet next() {
            Map<String, INDArray> batch = pending != null ? pending : rest.next();
            pending = null;
            INDArray[] arrays = new INDArray[placeholders.size()];
            for (int i = 0; i < arrays.length; i++) {
                arrays[i] = batch.get(placeholders.get(i));
                if (arrays[i] == null) {
                    throw new PeftException("A batch lacks placeholder '" + placeholders.get(i) + "', which the first batch had");
                }
            }
            if (arrays.length == 1) {
                return new MultiDataSet(arrays, new INDArray[0]);
            }
            return new MultiDataSet(java.util.Arrays.copyOf(arrays, arrays.length - 1), new INDArray[] {arrays[arrays.length - 1]});
        }

        @Override
        public MultiDataSet next(int num) {
            return next();
        }

        @Override
        public void setPreProcessor(MultiDataSetPreProcessor preProcessor) {
            throw new UnsupportedOperationException();
        }

        @Override
        public MultiDataSetPreProcessor getPreProcessor() {
            return null;
        }

        @Override
        public boolean resetSupported() {
            return false;
        }

        @Override
        public boolean asyncSupported() {
            return false;
        }

        @Override
        public void reset() {
            throw new UnsupportedOperationException("a TrainingMode's batches are read once");
        }
    }

    /**
     * An "optimizer" that keeps a copy of each gradient and updates nothing, so that SameDiff's own training
     * session (with its array reuse) computes the gradients and the caller decides the update.
     */
    private static final class GradientCapture implements IUpdater {
        private final transient Map<String, INDArray> captured;

        GradientCapture(Map<String, INDArray> captured) {
            this.captured = captured;
        }

        @Override
        public long stateSize(long numParams) {
            return 0;
        }

        @Override
        public GradientUpdater instantiate(INDArray viewArray, boolean initializeViewArray) {
            return new Capturing(this);
        }

        @Override
        public GradientUpdater instantiate(Map<String, INDArray> updaterState, boolean initializeStateArrays) {
            return new Capturing(this);
        }

        @Override
        public IUpdater clone() {
            return this;
        }

        @Override
        public double getLearningRate(int iteration, int epoch) {
            return 0;
        }

        @Override
        public boolean hasLearningRate() {
            return false;
        }

        @Override
        public void setLrAndSchedule(double lr, ISchedule lrSchedule) {
            throw new UnsupportedOperationException();
        }

        @Override
        public boolean equals(Object other) {
            return other == this;
        }

        @Override
        public int hashCode() {
            return System.identityHashCode(this);
        }

        /** Per variable: records the gradient under the variable's name, leaves an update of zero. */
        static final class Capturing implements GradientUpdater<GradientCapture> {
            private final GradientCapture config;
            private String name;

            Capturing(GradientCapture config) {
                this.config = config;
            }

            void capture(String variable) {
                this.name = variable;
            }

            @Override
            public GradientCapture getConfig() {
                return config;
            }

            @Override
            public void setState(Map<String, INDArray> stateMap, boolean initialize) {
            }

            @Override
            public Map<String, INDArray> getState() {
                return new HashMap<>();
            }

            @Override
            public void setStateViewArray(INDArray viewArray, long[] gradientShape, char gradientOrder, boolean initialize) {
            }

            @Override
            public void applyUpdater(INDArray gradient, int iteration, int epoch) {
                config.captured.put(name, gradient.dup());
                gradient.assign(0);
            }
        }
    }
}
