package io.peft4j.spark;

import io.peft4j.runtime.PeftException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Objects;
import java.util.Set;
import org.apache.spark.Partitioner;
import org.apache.spark.api.java.JavaPairRDD;
import org.apache.spark.api.java.JavaRDD;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.learning.config.IUpdater;
import org.nd4j.linalg.learning.regularization.Regularization;
import scala.Tuple2;
import scala.reflect.ClassTag$;

/**
 * Synchronous data-parallel adapter training on Spark: N workers (one barrier task each) hold the frozen
 * base and the adapter; every step each computes the gradients of its {@code globalBatch / N} rows of the
 * global batch, the workers exchange them with {@code BarrierTaskContext.allGather} and all apply the same
 * averaged update, so they hold identical parameters throughout. Only the trainable parameters' gradients
 * travel: for LoRA on all-MiniLM-L6-v2 with its head, 74,498 values a step.
 *
 * <pre>{@code
 * TrainedAdapter adapter = SparkAdapterTraining.builder(job).workers(4).globalBatch(64).epochs(1)
 *         .updater(new Adam(1e-3)).checkpoints(Path.of("/shared/run-1"), 50).build()
 *         .fit(dataset);
 * adapter.save(Path.of("spam-lora"));
 * }</pre>
 *
 * <p>Global batch {@code b} of an epoch is rows {@code [b·G, (b+1)·G)} of the data in its order
 * (shuffle it first if it is sorted); the rows after the last full batch are not used. The result equals
 * single-process training on the same global batches up to float rounding in the averaging. With
 * checkpoints in a directory every executor reads and writes (a shared file system), a failed stage that
 * Spark retries resumes from the newest checkpoint and ends with the same adapter as an unfailed run; Spark
 * retries a barrier stage up to {@code spark.stage.maxConsecutiveAttempts} times (4 by default) once a task
 * has failed {@code spark.task.maxFailures} times (4 on a cluster; {@code local[N, F]} sets it in local mode).
 */
public final class SparkAdapterTraining<M> {

    private final TrainingJob<M> job;
    private final int workers;
    private final int globalBatch;
    private final int epochs;
    private final IUpdater updater;
    private final List<Regularization> regularization;
    private final Path checkpointDirectory;
    private final int checkpointEvery;
    private final boolean resume;

    private SparkAdapterTraining(Builder<M> builder) {
        this.job = builder.job;
        this.workers = builder.workers;
        this.globalBatch = builder.globalBatch;
        this.epochs = builder.epochs;
        this.updater = builder.updater;
        this.regularization = List.copyOf(builder.regularization);
        this.checkpointDirectory = builder.checkpointDirectory;
        this.checkpointEvery = builder.checkpointEvery;
        this.resume = builder.resume;
    }

    public static <M> Builder<M> builder(TrainingJob<M> job) {
        return new Builder<>(job);
    }

    /** The run's settings; {@link #build()} checks them. */
    public static final class Builder<M> {
        private final TrainingJob<M> job;
        private int workers = 2;
        private int globalBatch = 16;
        private int epochs = 1;
        private IUpdater updater = new Adam(1e-3);
        private List<Regularization> regularization = List.of();
        private Path checkpointDirectory;
        private int checkpointEvery;
        private boolean resume;

        private Builder(TrainingJob<M> job) {
            this.job = Objects.requireNonNull(job, "job");
        }

        /** Barrier tasks, one per worker; the cluster needs this many free task slots at once. */
        public Builder<M> workers(int count) {
            this.workers = count;
            return this;
        }

        /** Rows per optimizer step over all workers; a multiple of the worker count. */
        public Builder<M> globalBatch(int rows) {
            this.globalBatch = rows;
            return this;
        }

        public Builder<M> epochs(int count) {
            this.epochs = count;
            return this;
        }

        /** The optimizer (Adam 1e-3 by default), applied as SameDiff's training applies it. */
        public Builder<M> updater(IUpdater config) {
            this.updater = Objects.requireNonNull(config, "updater");
            return this;
        }

        public Builder<M> regularization(Regularization... terms) {
            this.regularization = List.of(terms);
            return this;
        }

        /** A checkpoint every {@code everySteps} steps in {@code directory}, which every executor must be able to read and write. */
        public Builder<M> checkpoints(Path directory, int everySteps) {
            this.checkpointDirectory = directory;
            this.checkpointEvery = everySteps;
            return this;
        }

        /**
         * Continue the run whose checkpoints are in the checkpoint directory (after a driver crash, say). Without
         * it, a directory holding an earlier run's checkpoints is refused, so that no run silently continues
         * another.
         */
        public Builder<M> resume(boolean value) {
            this.resume = value;
            return this;
        }

        public SparkAdapterTraining<M> build() {
            if (workers < 1) {
                throw new IllegalArgumentException("workers must be at least 1, got " + workers);
            }
            if (globalBatch < workers || globalBatch % workers != 0) {
                throw new IllegalArgumentException("The global batch of " + globalBatch + " rows does not divide among " + workers
                        + " workers: choose a multiple of " + workers + " (e.g. " + Math.max(workers, globalBatch / workers * workers) + ")");
            }
            if (epochs < 1) {
                throw new IllegalArgumentException("epochs must be at least 1, got " + epochs);
            }
            if (resume && checkpointDirectory == null) {
                throw new IllegalArgumentException("resume(true) needs checkpoints(directory, everySteps)");
            }
            if (checkpointDirectory != null && checkpointEvery < 1) {
                throw new IllegalArgumentException("checkpoints need a step interval of at least 1, got " + checkpointEvery);
            }
            return new SparkAdapterTraining<>(this);
        }
    }

    /**
     * Trains on {@code data} (which must have the job's columns) and returns the trained parameters. Bad
     * input fails here, before the barrier stage starts: missing columns, fewer rows than one global batch, a
     * base that the executors cannot load.
     */
    public TrainedAdapter<M> fit(Dataset<Row> data) {
        List<String> missing = new ArrayList<>(job.columns());
        missing.removeAll(Set.of(data.columns()));
        if (!missing.isEmpty()) {
            throw new PeftException("The data has no column " + missing + "; " + job.getClass().getSimpleName() + " reads "
                    + job.columns() + " and the data has " + Arrays.toString(data.columns()));
        }
        Dataset<Row> selected = data.selectExpr(job.columns().stream().map(name -> "`" + name + "`").toArray(String[]::new));
        long rows = selected.count();
        long batchesPerEpoch = rows / globalBatch;
        if (batchesPerEpoch < 1) {
            throw new PeftException("The data has " + rows + " rows, fewer than one global batch of " + globalBatch);
        }
        if (checkpointDirectory != null && !resume) {
            StepCheckpoints.latest(checkpointDirectory).ifPresent(saved -> {
                throw new PeftException(checkpointDirectory + " holds the checkpoint of step " + saved.step() + " of an earlier run: pass "
                        + "resume(true) to continue that run, or delete the directory (or choose another) to start a new one");
            });
        }
        ExecutorChecks.baseLoads(selected.sparkSession(), job, workers);
        int shard = globalBatch / workers;
        TrainingWorker.Plan plan = new TrainingWorker.Plan(java.util.UUID.randomUUID().toString(), resume, workers, shard,
                Math.toIntExact(batchesPerEpoch),
                Math.toIntExact(batchesPerEpoch * epochs), checkpointDirectory == null ? null : checkpointDirectory.toAbsolutePath().toString(),
                checkpointEvery);
        long used = batchesPerEpoch * globalBatch;
        int batch = globalBatch;
        // Row j of batch b = j / G, position p = j % G goes to worker p / S at place b·S + p % S of its stream.
        JavaPairRDD<Long, Row> placed = selected.javaRDD().zipWithIndex()
                .filter(pair -> pair._2() < used)
                .mapToPair(pair -> {
                    long index = pair._2();
                    long position = index % batch;
                    long worker = position / shard;
                    long place = index / batch * shard + position % shard;
                    return new Tuple2<>((worker << 40) | place, pair._1());
                });
        JavaRDD<Row> streams = placed.repartitionAndSortWithinPartitions(new WorkerPartitioner(workers)).values();
        long started = System.nanoTime();
        // Spark retries a failed barrier stage only when it is a shuffle-map stage (a result stage may have
        // committed output), so worker 0's result goes through a one-partition shuffle to the driver.
        List<WorkerResult> results = streams.rdd().barrier()
                .mapPartitions(new TrainingWorker<>(job, updater, regularization, plan), false, ClassTag$.MODULE$.apply(WorkerResult.class))
                .toJavaRDD().repartition(1).collect();
        double seconds = (System.nanoTime() - started) / 1e9;
        if (results.size() != 1) {
            throw new IllegalStateException("expected worker 0's result, got " + results.size());
        }
        return new TrainedAdapter<>(job, results.get(0), workers, globalBatch, seconds);
    }

    /** Sends key {@code worker << 40 | place} to partition {@code worker}. */
    private static final class WorkerPartitioner extends Partitioner {
        private final int workers;

        WorkerPartitioner(int workers) {
            this.workers = workers;
        }

        @Override
        public int numPartitions() {
            return workers;
        }

        @Override
        public int getPartition(Object key) {
            return (int) (((Long) key) >>> 40);
        }

        @Override
        public boolean equals(Object other) {
            return other instanceof WorkerPartitioner partitioner && partitioner.workers == workers;
        }

        @Override
        public int hashCode() {
            return workers;
        }
    }
}
