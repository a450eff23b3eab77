package io.peft4j.samples.benchmark;

import io.peft4j.runtime.PeftModel;
import java.util.Map;
import java.util.function.Function;
import java.util.function.Supplier;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;

/**
 * A model at fixed shapes that {@link TransformerBenchmark} times: a fresh model per measured
 * method, one fixed batch, and the FLOPs of one forward pass.
 */
interface Workload {

    /** How the tables name this workload, with its shapes. */
    String description();

    /** The {@code --model} of {@code benchmarks/pytorch_reference.py} with the same model and shapes. */
    String pytorchModel();

    /** Multiply-adds of one forward pass of {@link #batch()}, counted as 2 FLOPs each. */
    double forwardFlops();

    /** The batch every step and forward pass uses: features in graph order, integer class labels. */
    MultiDataSet batch();

    /** Placeholder names for {@link #batch()}'s features, then its labels. */
    TrainingConfig trainingConfig();

    /**
     * A new model set up for {@code method}: {@link Method#BASE} (nothing attached, for forward passes),
     * {@link Method#FULL}, {@link Method#LORA} or {@link Method#ADAPTER}.
     */
    Model create(Method method);

    /** What is measured. */
    enum Method { BASE, FULL, LORA, ADAPTER }

    /**
     * One model: its graph and, for adapter methods, its {@link PeftModel} (null for
     * {@link Method#BASE} and {@link Method#FULL}).
     *
     * @param graph  builds the forward pass and loss into {@code sameDiff} and returns the output's
     *               name; called again after {@link PeftModel#merge()}, the new graph carries no LoRA
     *               branch
     * @param feeder the placeholders' values for a forward pass of a batch
     */
    record Model(SameDiff sameDiff, PeftModel peft, Supplier<String> graph, Function<MultiDataSet, Map<String, INDArray>> feeder) {

        String buildGraph() {
            return graph.get();
        }

        Map<String, INDArray> features(MultiDataSet batch) {
            return feeder.apply(batch);
        }
    }
}
