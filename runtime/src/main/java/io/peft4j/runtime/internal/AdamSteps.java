package io.peft4j.runtime.internal;

import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.AdamUpdater;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.Adam;

/**
 * Adam's updates of a replayed step's trainable parameters in peft4j's kernel
 * ({@link ReplayKernels#adam}), bound per variable to its parameter, gradient and moment arrays and
 * bound again when any of them is replaced.
 *
 * <p>Covers SameDiff's {@link AdamUpdater} when the step minimises without regularisation; anything
 * else (another updater, weight decay, maximising) goes through the updater and {@code subi} as
 * SameDiff's session would. The kernel computes libnd4j's bits, so the choice changes time only.
 */
final class AdamSteps {
    private final ReplayKernels kernels;
    private final Map<String, Binding> bindings = new HashMap<>();

    private record Binding(INDArray parameter, INDArray gradient, INDArray m, INDArray v, ReplayKernels.ParameterStep step) {
    }

    private AdamSteps(ReplayKernels kernels) {
        this.kernels = kernels;
    }

    /** With {@code kernels}, unless {@link ReplayKernels#OPTIMIZER_PROPERTY} is {@code false} now. */
    static AdamSteps with(ReplayKernels kernels) {
        boolean off = kernels == ReplayKernels.NONE || "false".equalsIgnoreCase(System.getProperty(ReplayKernels.OPTIMIZER_PROPERTY));
        return new AdamSteps(off ? ReplayKernels.NONE : kernels);
    }

    /**
     * The kernel's step for variable {@code name}, or {@code null} when the updater and {@code subi}
     * are to run: not Adam, regularised, maximising, or arrays the kernel does not cover.
     */
    ReplayKernels.ParameterStep stepFor(String name, INDArray parameter, INDArray gradient, GradientUpdater<?> updater, TrainingConfig config) {
        List<?> regularizations = config.getRegularization();
        if (kernels == ReplayKernels.NONE || updater == null || updater.getClass() != AdamUpdater.class || !config.isMinimize()
                || (regularizations != null && !regularizations.isEmpty())) {
            return null;
        }
        AdamUpdater adam = (AdamUpdater) updater;
        Binding binding = bindings.get(name);
        if (binding == null || binding.parameter() != parameter || binding.gradient() != gradient || binding.m() != adam.getM()
                || binding.v() != adam.getV()) {
            binding = new Binding(parameter, gradient, adam.getM(), adam.getV(),
                    adam.getM() == null || adam.getV() == null ? null : kernels.adam(parameter, gradient, adam.getM(), adam.getV()));
            bindings.put(name, binding);
        }
        return binding.step();
    }

    /**
     * The update into the gradient's array, as {@code updater.applyUpdater(gradient, iteration, epoch)}
     * computes it; returns whether every value of the update is finite.
     */
    static boolean update(ReplayKernels.ParameterStep step, GradientUpdater<?> updater, At at) {
        Adam config = ((AdamUpdater) updater).getConfig();
        return step.update(config.getLearningRate(at.iteration(), at.epoch()), config.getBeta1(), config.getBeta2(), config.getEpsilon(), at.iteration());
    }
}
