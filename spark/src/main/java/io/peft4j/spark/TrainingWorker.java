package io.peft4j.spark;

import io.peft4j.runtime.ParameterUpdater;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.TrainingMode;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.apache.spark.BarrierTaskContext;
import org.apache.spark.sql.Row;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.regularization.Regularization;
import scala.collection.Iterator;
import scala.runtime.AbstractFunction1;
import scala.jdk.javaapi.CollectionConverters;

/**
 * One worker of a barrier stage: builds the model around the JVM's copy of the base, then for every step
 * computes the gradients of its shard of the global batch, exchanges them with {@code allGather}, averages
 * them and applies the same update as every other worker.
 */
final class TrainingWorker<M> extends AbstractFunction1<Iterator<Row>, Iterator<WorkerResult>> implements Serializable {

    /** The run's fixed sizes, shipped with the task. */
    record Plan(String runId, boolean resumeEarlierRun, int workers, int shardSize, int batchesPerEpoch, int totalSteps,
                String checkpointDirectory, int checkpointEvery) implements Serializable {
    }

    private final TrainingJob<M> job;
    private final IUpdater updater;
    private final List<Regularization> regularization;
    private final Plan plan;

    TrainingWorker(TrainingJob<M> job, IUpdater updater, List<Regularization> regularization, Plan plan) {
        this.job = job;
        this.updater = updater;
        this.regularization = List.copyOf(regularization);
        this.plan = plan;
    }

    /** Runs in the barrier task: the partition's rows in, worker 0's result (or nothing) out. */
    /** What must match for a checkpoint to continue this run: the sizes and the trainable variables. */
    private String fingerprint(List<String> order, Map<String, INDArray> parameters) {
        StringBuilder text = new StringBuilder(plan.workers() + "x" + plan.shardSize() + " rows, " + plan.totalSteps() + " steps:");
        for (String name : order) {
            text.append(' ').append(name).append(java.util.Arrays.toString(parameters.get(name).shape()));
        }
        return Integer.toHexString(text.toString().hashCode()) + " (" + plan.workers() + " workers, " + plan.totalSteps() + " steps, "
                + order.size() + " trainable variables)";
    }

    private int progressInterval() {
        return Math.max(1, Math.min(25, plan.totalSteps() / 6));
    }

    @Override
    public Iterator<WorkerResult> apply(Iterator<Row> partition) {
        List<Row> rows = new ArrayList<>();
        CollectionConverters.asJava(partition).forEachRemaining(rows::add);
        Optional<WorkerResult> result = train(BarrierTaskContext.get(), rows);
        return CollectionConverters.asScala(result.stream().iterator());
    }

    private Optional<WorkerResult> train(BarrierTaskContext context, List<Row> rows) {
        int worker = context.partitionId();
        int expected = plan.batchesPerEpoch() * plan.shardSize();
        if (rows.size() != expected) {
            throw new IllegalStateException("worker " + worker + " received " + rows.size() + " rows, the plan gives it " + expected);
        }
        ExecutorAgent.ensure();
        TaskThreads.apply();
        M model = job.createModel(BaseWeightsCache.get(job));
        PeftModel peft = job.attach(model);
        job.buildLoss(model);
        try (TrainingMode mode = peft.trainingMode()) {
            SameDiff sd = mode.sameDiff();
            List<String> order = mode.trainableVariables();
            ParameterUpdater updates = new ParameterUpdater(sd, order, updater, regularization);
            Map<String, INDArray> parameters = new LinkedHashMap<>();
            order.forEach(name -> parameters.put(name, sd.getVariable(name).getArr()));
            List<Double> losses = new ArrayList<>();
            int start = 0;
            Path checkpoints = plan.checkpointDirectory() == null ? null : Path.of(plan.checkpointDirectory());
            String fingerprint = fingerprint(order, parameters);
            if (checkpoints != null) {
                Optional<StepCheckpoints.Saved> saved = StepCheckpoints.latest(checkpoints);
                if (saved.isPresent() && (saved.get().runId().equals(plan.runId()) || plan.resumeEarlierRun())) {
                    if (!saved.get().fingerprint().equals(fingerprint)) {
                        throw new PeftException("The checkpoint of step " + saved.get().step() + " in " + checkpoints + " is of another run ("
                                + saved.get().fingerprint() + "; this run is " + fingerprint + "): choose another checkpoint directory");
                    }
                    saved.get().parameters().forEach((name, value) -> parameters.get(name).assign(value));
                    updates.restore(saved.get().optimizer());
                    losses.addAll(saved.get().losses());
                    start = saved.get().step();
                }
            }
            long[] messageBytes = {0};
            long[] stepStarted = {0};
            List<Double> stepSeconds = new ArrayList<>();
            List<Double> exchangeSeconds = new ArrayList<>();
            int first = start;
            java.util.Iterator<Map<String, INDArray>> shards = new java.util.Iterator<>() {
                private int step = first;

                @Override
                public boolean hasNext() {
                    return step < plan.totalSteps();
                }

                @Override
                public Map<String, INDArray> next() {
                    stepStarted[0] = System.nanoTime();
                    int batch = step++ % plan.batchesPerEpoch();
                    return job.batch(rows.subList(batch * plan.shardSize(), (batch + 1) * plan.shardSize()));
                }
            };
            // One SameDiff training session for all steps (it reuses its arrays); each step's gradients are
            // exchanged and averaged, and every worker applies the same update before the next step.
            mode.run(shards, (index, loss, gradients) -> {
                int step = first + index;
                String message = GradientMessage.encode(loss, order, gradients);
                messageBytes[0] = message.length();
                long exchange = System.nanoTime();
                String[] messages = context.allGather(message);
                exchangeSeconds.add((System.nanoTime() - exchange) / 1e9);
                GradientMessage.Averaged all = GradientMessage.average(messages, order, parameters);
                updates.apply(all.gradients(), step, step / plan.batchesPerEpoch());
                losses.add(all.loss());
                if (checkpoints != null && worker == 0 && (step + 1) % plan.checkpointEvery() == 0 && step + 1 < plan.totalSteps()) {
                    StepCheckpoints.write(checkpoints, step + 1, plan.runId(), fingerprint, parameters, updates.state(), losses);
                }
                stepSeconds.add((System.nanoTime() - stepStarted[0]) / 1e9);
                if (worker == 0 && ((step + 1) % progressInterval() == 0 || step + 1 == plan.totalSteps())) {
                    // In the executor's output (the console in local mode, the executor log on a cluster).
                    System.out.printf(Locale.ROOT, "[peft4j] spark worker 0 of %d: step %d/%d  loss %.4f  %.2f s/step (%.2f s in allGather)%n",
                            plan.workers(), step + 1, plan.totalSteps(), all.loss(), stepSeconds.get(stepSeconds.size() - 1),
                            exchangeSeconds.get(exchangeSeconds.size() - 1));
                }
            });
            if (worker != 0) {
                return Optional.empty();
            }
            Map<String, TensorBytes> trained = new LinkedHashMap<>();
            parameters.forEach((name, value) -> trained.put(name, TensorBytes.of(value)));
            return Optional.of(new WorkerResult(trained, losses, messageBytes[0], stepSeconds, exchangeSeconds, start));
        }
    }
}
