package io.peft4j.runtime;

import io.peft4j.runtime.internal.LoraPlus;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.regularization.Regularization;

/**
 * Applies an optimizer step to named variables exactly as SameDiff's own training does (regularization
 * before the updater, the updater, regularization after it, then {@code parameter -= update}), for
 * training loops of one's own: with the same gradients it gives the same parameters as
 * {@code SameDiff.fit}. Its state (e.g. Adam's moments, one {@code [1, 2·n]} array per variable of
 * {@code n} values) can be read and restored for checkpoints.
 */
public final class ParameterUpdater {

    private final SameDiff sameDiff;
    private final IUpdater config;
    private final List<Regularization> regularization;
    private final Map<String, GradientUpdater<?>> updaters = new LinkedHashMap<>();
    private final Map<String, INDArray> states = new LinkedHashMap<>();

    /** Fresh optimizer state for {@code variables} of {@code sameDiff}. */
    public ParameterUpdater(SameDiff sameDiff, List<String> variables, IUpdater config, List<Regularization> regularization) {
        this(sameDiff, variables, config, regularization, 1.0);
    }

    /**
     * As {@link #ParameterUpdater(SameDiff, List, IUpdater, List)}, with LoRA+: {@code lora_B} and vectors
     * learn at {@code loraPlusRatio ×} the learning rate, as {@code TrainingOptions.withLoraPlus} trains them.
     */
    public ParameterUpdater(SameDiff sameDiff, List<String> variables, IUpdater config, List<Regularization> regularization,
                            double loraPlusRatio) {
        this.sameDiff = sameDiff;
        this.config = config;
        this.regularization = List.copyOf(regularization);
        for (String name : variables) {
            INDArray parameter = sameDiff.getVariable(name).getArr();
            long size = config.stateSize(parameter.length());
            INDArray state = size == 0 ? null : Nd4j.createUninitialized(parameter.dataType(), 1, size);
            updaters.put(name, LoraPlus.scaled(config.instantiate(state, true), LoraPlus.factor(name, parameter, loraPlusRatio)));
            states.put(name, state);
        }
    }

    /**
     * Updates every variable from its gradient; {@code gradients} are consumed (turned into the updates).
     * {@code iteration} and {@code epoch} count from 0, as SameDiff's {@code TrainingConfig} does.
     */
    public void apply(Map<String, INDArray> gradients, int iteration, int epoch) {
        double learningRate = config.hasLearningRate() ? config.getLearningRate(iteration, epoch) : 1.0;
        for (Map.Entry<String, GradientUpdater<?>> entry : updaters.entrySet()) {
            INDArray gradient = gradients.get(entry.getKey());
            if (gradient == null) {
                throw new PeftException("No gradient for trainable variable '" + entry.getKey() + "'");
            }
            INDArray parameter = sameDiff.getVariable(entry.getKey()).getArr();
            for (Regularization r : regularization) {
                if (r.applyStep() == Regularization.ApplyStep.BEFORE_UPDATER) {
                    r.apply(parameter, gradient, learningRate, iteration, epoch);
                }
            }
            entry.getValue().applyUpdater(gradient, iteration, epoch);
            for (Regularization r : regularization) {
                if (r.applyStep() == Regularization.ApplyStep.POST_UPDATER) {
                    r.apply(parameter, gradient, learningRate, iteration, epoch);
                }
            }
            parameter.subi(gradient);
        }
    }

    /** The optimizer state by variable name (variables whose updater keeps none are absent); live arrays. */
    public Map<String, INDArray> state() {
        Map<String, INDArray> present = new LinkedHashMap<>();
        states.forEach((name, state) -> {
            if (state != null) {
                present.put(name, state);
            }
        });
        return present;
    }

    /** Puts back a state read from {@link #state()}, e.g. from a checkpoint. */
    public void restore(Map<String, INDArray> saved) {
        state().forEach((name, state) -> {
            INDArray value = saved.get(name);
            if (value == null || value.length() != state.length()) {
                throw new PeftException("The saved optimizer state has " + (value == null ? "nothing" : value.length() + " values")
                        + " for '" + name + "', which needs " + state.length());
            }
            state.assign(value.reshape(state.shape()));
        });
    }
}
