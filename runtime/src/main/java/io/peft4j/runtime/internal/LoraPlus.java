package io.peft4j.runtime.internal;

import java.util.LinkedHashMap;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.GradientUpdater;
import org.nd4j.linalg.learning.config.IUpdater;

/**
 * LoRA+ (Hayou et al., 2024) as Hugging Face PEFT's {@code create_loraplus_optimizer} groups parameters:
 * every trainable variable named {@code lora_B} and every trainable vector (biases, norms of modules
 * trained whole) learns at {@code ratio ×} the learning rate, everything else (lora_A, matrices of
 * modules trained whole) at the learning rate.
 *
 * <p>SameDiff keeps one updater per variable but takes all of them from one {@code IUpdater}; the
 * factor is applied by wrapping a variable's updater and scaling the update it computes. For SGD,
 * momentum, Adam, AdamW's Adam part, Nadam, AMSGrad, AdaMax, AdaGrad and RMSProp the update is
 * proportional to the learning rate, so this is exactly a learning rate of {@code ratio × lr}, schedules
 * included. Regularization applied after the updater (ND4J's {@code WeightDecay}) still uses the
 * unscaled rate.
 */
public final class LoraPlus {

    private LoraPlus() {
    }

    /** PEFT's grouping: {@code ratio} for {@code lora_B} and rank-1 variables, 1 for the rest. */
    public static double factor(String variable, INDArray value, double ratio) {
        return variable.contains("lora_B") || value.rank() == 1 ? ratio : 1.0;
    }

    /** The learning-rate factor of each variable that has an updater in {@code sd}. */
    public static Map<String, Double> factors(SameDiff sd, double ratio) {
        Map<String, Double> factors = new LinkedHashMap<>();
        TrainingCheckpoints.createUpdaters(sd);
        sd.getUpdaterMap().keySet().forEach(name -> factors.put(name, factor(name, sd.getVariable(name).getArr(), ratio)));
        return factors;
    }

    /**
     * Makes {@code sd}'s updaters learn with {@code ratio} (1 undoes an earlier call). Keeps their state,
     * so it may be called before every training run and after an optimizer state was restored.
     */
    @SuppressWarnings({"rawtypes", "unchecked"})
    public static void install(SameDiff sd, double ratio) {
        Map<String, Double> factors = factors(sd, ratio);
        Map<String, GradientUpdater> updaters = sd.getUpdaterMap();
        factors.forEach((name, factor) -> {
            GradientUpdater current = updaters.get(name);
            GradientUpdater inner = current instanceof Scaled scaled ? scaled.inner : current;
            updaters.put(name, factor == 1.0 ? inner : new Scaled(inner, factor));
        });
    }

    /** {@code updater}, or one whose updates are {@code factor ×} its updates. */
    @SuppressWarnings("rawtypes")
    public static GradientUpdater<?> scaled(GradientUpdater<?> updater, double factor) {
        return factor == 1.0 ? updater : new Scaled(updater, factor);
    }

    /** An updater whose updates are {@code factor ×} those of {@code inner}. */
    @SuppressWarnings({"rawtypes", "unchecked"})
    static final class Scaled implements GradientUpdater {
        private final GradientUpdater inner;
        private final double factor;

        Scaled(GradientUpdater inner, double factor) {
            this.inner = inner;
            this.factor = factor;
        }

        @Override
        public IUpdater getConfig() {
            return inner.getConfig();
        }

        @Override
        public void setState(Map stateMap, boolean initialize) {
            inner.setState(stateMap, initialize);
        }

        @Override
        public Map<String, INDArray> getState() {
            return inner.getState();
        }

        @Override
        public void setStateViewArray(INDArray viewArray, long[] gradientShape, char gradientOrder, boolean initialize) {
            inner.setStateViewArray(viewArray, gradientShape, gradientOrder, initialize);
        }

        @Override
        public void applyUpdater(INDArray gradient, int iteration, int epoch) {
            inner.applyUpdater(gradient, iteration, epoch);
            gradient.muli(factor);
        }
    }
}
