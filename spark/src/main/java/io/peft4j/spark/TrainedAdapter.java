package io.peft4j.spark;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.CheckpointOptions;
import java.nio.file.Path;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The result of {@link SparkAdapterTraining#fit}: the trained parameters (adapters and trained heads, by
 * variable name), the loss of each step, and what the run cost. {@link #save} writes the adapter in
 * Hugging Face PEFT's format from a model the driver builds around the base.
 *
 * @param <M> the model's class
 */
public final class TrainedAdapter<M> {

    private final TrainingJob<M> job;
    private final WorkerResult result;
    private final int workers;
    private final int globalBatch;
    private final double seconds;

    TrainedAdapter(TrainingJob<M> job, WorkerResult result, int workers, int globalBatch, double seconds) {
        this.job = job;
        this.result = result;
        this.workers = workers;
        this.globalBatch = globalBatch;
        this.seconds = seconds;
    }

    /** Trained values by variable name (e.g. LoRA's {@code A [in, r]} and {@code B [r, out]}), as new arrays. */
    public Map<String, INDArray> parameters() {
        Map<String, INDArray> arrays = new LinkedHashMap<>();
        result.parameters().forEach((name, bytes) -> arrays.put(name, bytes.toArray()));
        return arrays;
    }

    /** The global batch's mean loss at each step. */
    public List<Double> losses() {
        return Collections.unmodifiableList(result.losses());
    }

    /** Bytes one worker sent per step (Base64 text of its gradients and loss); it received {@code workers} of them. */
    public long bytesSentPerWorkerPerStep() {
        return result.messageBytes();
    }

    /** Wall time of each step of the last stage attempt, gradient exchange included. */
    public List<Double> stepSeconds() {
        return Collections.unmodifiableList(result.stepSeconds());
    }

    /** The part of each step of the last stage attempt spent in {@code allGather}, waiting for the slowest worker included. */
    public List<Double> exchangeSeconds() {
        return Collections.unmodifiableList(result.exchangeSeconds());
    }

    /** The step the last stage attempt resumed at: 0 unless a failed attempt (or an earlier run, with resume) left a checkpoint. */
    public int resumedAtStep() {
        return result.resumedAtStep();
    }

    public int workers() {
        return workers;
    }

    public int globalBatch() {
        return globalBatch;
    }

    /** Wall time of the barrier stage, all attempts. */
    public double seconds() {
        return seconds;
    }

    /** Puts the trained values into {@code peft}'s model, which the job built and attached the same way. */
    public void applyTo(PeftModel peft) {
        Map<String, INDArray> values = parameters();
        for (Map.Entry<String, INDArray> entry : values.entrySet()) {
            SDVariable variable = peft.sameDiff().hasVariable(entry.getKey()) ? peft.sameDiff().getVariable(entry.getKey()) : null;
            if (variable == null || !java.util.Arrays.equals(variable.getArr().shape(), entry.getValue().shape())) {
                throw new PeftException("The model has no trainable variable '" + entry.getKey() + "' of shape "
                        + java.util.Arrays.toString(entry.getValue().shape()) + ": build and attach it as the training job does");
            }
            variable.getArr().assign(entry.getValue());
        }
    }

    /**
     * Builds the model on the driver (base from the job, adapters attached, graph built), puts the trained
     * values in and saves every adapter to {@code directory} in PEFT's format; returns the directory.
     */
    public Path save(Path directory) {
        return save(directory, CheckpointOptions.defaults());
    }

    public Path save(Path directory, CheckpointOptions options) {
        ExecutorAgent.ensure(); // the driver attaches the adapters too
        M model = job.createModel(BaseWeightsCache.get(job));
        PeftModel peft = job.attach(model);
        job.buildLoss(model);
        applyTo(peft);
        return peft.save(directory, options);
    }
}
