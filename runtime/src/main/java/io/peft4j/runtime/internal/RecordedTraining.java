package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Listener;
import org.nd4j.autodiff.listeners.ListenerResponse;
import org.nd4j.autodiff.listeners.Loss;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.listeners.records.LossCurve;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.autodiff.samediff.internal.TrainingSession;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.dataset.api.iterator.MultiDataSetIterator;
import org.nd4j.linalg.learning.GradientUpdater;

/**
 * SameDiff's training loop ({@code SameDiff.fit}: epochs, listener calls, iteration and epoch
 * counts), with each step replayed from a {@link RecordedStep} when the batch allows it.
 *
 * <p>The first step of each batch shape runs in SameDiff's {@code TrainingSession}, the second too,
 * recorded; later steps with the same placeholder shapes replay the recording (the three most recent
 * are kept). A shape seen once (an epoch's shorter last batch, data padded to each batch's longest
 * row) is not recorded until it comes again. Graphs the recording cannot
 * replay (control flow, legacy random ops, random custom ops without a {@link RandomOpSeeder} among the
 * listeners) train in {@code SameDiff.fit} itself. Listeners see the calls SameDiff
 * makes, in the same order, with the same iteration and epoch numbers.
 */
public final class RecordedTraining {
    private static final String GRADIENT_FUNCTION = "grad";
    /** Recordings kept at once: the full batch shape and the last, shorter one, with room for a third. */
    private static final int MAX_RECORDINGS = 3;

    private final SameDiff sameDiff;
    private final SameDiff gradients;
    private final TrainingConfig config;
    private final Set<String> trainable = new LinkedHashSet<>();
    private final Map<String, String> variableOfGradient = new HashMap<>();
    private final List<RecordedStep> recordings = new ArrayList<>();
    private final Set<String> seenOnce = new HashSet<>();
    private boolean replayable = true;
    private int replayedSteps;

    private RecordedTraining(SameDiff sameDiff) {
        this.sameDiff = sameDiff;
        this.config = sameDiff.getTrainingConfig();
        if (sameDiff.getFunction(GRADIENT_FUNCTION) == null) {
            sameDiff.createGradFunction();
        }
        this.gradients = sameDiff.getFunction(GRADIENT_FUNCTION);
        for (SDVariable variable : sameDiff.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                trainable.add(variable.name());
                SDVariable gradient = variable.getGradient();
                if (gradient != null) {
                    variableOfGradient.put(gradient.name(), variable.name());
                }
            }
        }
    }

    /**
     * Trains {@code sameDiff} (its training config set, its updaters created) for {@code epochs}
     * epochs over {@code data}, as {@code sameDiff.fit(data, epochs, listeners)} would; returns how many
     * steps were replayed.
     */
    public static int fit(SameDiff sameDiff, MultiDataSetIterator data, int epochs, Listener... listeners) {
        RecordedTraining training = new RecordedTraining(sameDiff);
        boolean seeded = concat(sameDiff.getListeners(), listeners).stream().anyMatch(RandomOpSeeder.class::isInstance);
        if (!RecordedStep.replayable(training.gradients, seeded)) {
            sameDiff.fit(data, epochs, listeners);
            return 0;
        }
        return training.train(data, epochs, listeners);
    }

    private int train(MultiDataSetIterator data, int epochs, Listener[] given) {
        if (config == null) {
            throw new IllegalStateException("Set a training config on the SameDiff instance before training");
        }
        if (!data.hasNext() && data.resetSupported()) {
            data.reset();
        }
        List<Listener> listeners = new ArrayList<>();
        for (Listener listener : concat(sameDiff.getListeners(), given)) {
            if (listener.isActive(Operation.TRAINING)) {
                listeners.add(listener);
            }
        }
        At at = At.builder().epoch(config.getEpochCount()).iteration(config.getIterationCount()).trainingThreadNum(0)
                .javaThreadNum(Thread.currentThread().getId()).operation(Operation.TRAINING).build();
        listeners.forEach(listener -> listener.operationStart(sameDiff, Operation.TRAINING));
        LossCurve lossCurve = null;
        for (int epoch = 0; epoch < epochs; epoch++) {
            at.setEpoch(config.getEpochCount());
            listeners.forEach(listener -> listener.epochStart(sameDiff, at));
            long epochStart = System.currentTimeMillis();
            double[] lossSums = null;
            List<String> lossNames = null;
            int steps = 0;
            while (data.hasNext()) {
                long loadStart = System.currentTimeMillis();
                MultiDataSet batch = data.next();
                long loaded = System.currentTimeMillis() - loadStart;
                at.setIteration(config.getIterationCount());
                listeners.forEach(listener -> listener.iterationStart(sameDiff, at, batch, loaded));
                Loss loss = step(batch, at, listeners);
                if (lossSums == null) {
                    lossSums = loss.getLosses().clone();
                } else {
                    for (int i = 0; i < lossSums.length; i++) {
                        lossSums[i] += loss.getLosses()[i];
                    }
                }
                lossNames = loss.getLossNames();
                steps++;
                config.incrementIterationCount();
            }
            if (lossSums != null) {
                for (int i = 0; i < lossSums.length; i++) {
                    lossSums[i] /= steps;
                }
                lossCurve = lossCurve == null ? new LossCurve(lossSums, lossNames) : lossCurve.addLossAndCopy(lossSums, lossNames);
            }
            boolean stop = false;
            long epochMillis = System.currentTimeMillis() - epochStart;
            for (Listener listener : listeners) {
                stop |= listener.epochEnd(sameDiff, at, lossCurve, epochMillis) == ListenerResponse.STOP;
            }
            if (epoch < epochs - 1 || stop) {
                data.reset();
            }
            config.incrementEpochCount();
            if (stop) {
                break;
            }
        }
        listeners.forEach(listener -> listener.operationEnd(sameDiff, Operation.TRAINING));
        return replayedSteps;
    }

    private Loss step(MultiDataSet batch, At at, List<Listener> listeners) {
        Map<String, INDArray> placeholders = Placeholders.of(config, batch);
        Map<String, GradientUpdater> updaters = sameDiff.getUpdaterMap();
        for (RecordedStep recording : recordings) {
            if (recording.accepts(placeholders)) {
                replayedSteps++;
                Loss loss = recording.run(placeholders, batch, at, config, updaters, listeners);
                for (Listener listener : listeners) {
                    listener.iterationDone(gradients, at, batch, loss);
                }
                return loss;
            }
        }
        List<Listener> withRecorder = new ArrayList<>(listeners);
        RecordedStep.Recorder recorder = replayable && !seenOnce.add(RecordedStep.signature(placeholders))
                ? new RecordedStep.Recorder(Operation.TRAINING) : null;
        if (recorder != null) {
            withRecorder.add(recorder);
        } else if (withRecorder.isEmpty()) {
            // SameDiff's session skipped the parameter updates when asked with no listener at all (seen in
            // RecordedTrainingTest); SameDiff.fit always passes at least its history listener
            withRecorder.add(new TrainingListener());
        }
        // a session per step: one session asked twice for the same outputs computed nothing the second time
        Loss loss = new TrainingSession(gradients).trainingIteration(config, placeholders, trainable, updaters, batch, sameDiff.getLossVariables(), withRecorder, at);
        if (recorder != null) {
            RecordedStep recording = RecordedStep.build(gradients, recorder, placeholders, variableOfGradient, sameDiff.getLossVariables());
            if (recording == null) {
                replayable = false;
            } else {
                if (recordings.size() == MAX_RECORDINGS) {
                    recordings.remove(0);
                }
                recordings.add(recording);
            }
        }
        return loss;
    }

    /** A listener that does nothing but be active in training. */
    private static final class TrainingListener extends BaseListener {
        @Override
        public boolean isActive(Operation operation) {
            return operation == Operation.TRAINING;
        }
    }

    private static List<Listener> concat(List<Listener> own, Listener[] given) {
        List<Listener> all = new ArrayList<>();
        if (own != null) {
            all.addAll(own);
        }
        if (given != null) {
            all.addAll(List.of(given));
        }
        return all;
    }
}
