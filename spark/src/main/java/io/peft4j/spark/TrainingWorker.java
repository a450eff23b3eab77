package io.peft4j.spark;

import io.peft4j.runtime.ParameterUpdater;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.TrainingMode;
import java.io.Serializable;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
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
    record Plan(int workers, int shardSize, int batchesPerEpoch, int totalSteps, String checkpointDirectory, int checkpointEvery)
            implements Serializable {
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
            if (checkpoints != null) {
                Optional<StepCheckpoints.Saved> saved = StepCheckpoints.latest(checkpoints);
                if (saved.isPresent()) {
                    saved.get().parameters().forEach((name, value) -> parameters.get(name).assign(value));
                    updates.restore(saved.get().optimizer());
                    losses.addAll(saved.get().losses());
                    start = saved.get().step();
                }
            }
            long messageBytes = 0;
            List<Double> stepSeconds = new ArrayList<>();
            for (int step = start; step < plan.totalSteps(); step++) {
                long began = System.nanoTime();
                int batch = step % plan.batchesPerEpoch();
                List<Row> shard = rows.subList(batch * plan.shardSize(), (batch + 1) * plan.shardSize());
                TrainingMode.LossAndGradients mine = mode.lossAndGradients(job.batch(shard));
                String message = GradientMessage.encode(mine.loss(), order, mine.gradients());
                messageBytes = message.length();
                GradientMessage.Averaged all = GradientMessage.average(context.allGather(message), order, parameters);
                updates.apply(all.gradients(), step, step / plan.batchesPerEpoch());
                losses.add(all.loss());
                if (checkpoints != null && worker == 0 && (step + 1) % plan.checkpointEvery() == 0 && step + 1 < plan.totalSteps()) {
                    StepCheckpoints.write(checkpoints, step + 1, parameters, updates.state(), losses);
                }
                stepSeconds.add((System.nanoTime() - began) / 1e9);
            }
            if (worker != 0) {
                return Optional.empty();
            }
            Map<String, TensorBytes> trained = new LinkedHashMap<>();
            parameters.forEach((name, value) -> trained.put(name, TensorBytes.of(value)));
            return Optional.of(new WorkerResult(trained, losses, messageBytes, stepSeconds, start));
        }
    }
}
