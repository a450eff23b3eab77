package io.peft4j.spark;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.NoSuchElementException;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentLinkedQueue;
import org.apache.spark.api.java.function.MapPartitionsFunction;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Encoders;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Batch scoring of a {@code Dataset<Row>} with a base and an adapter: each executor JVM reads the base once,
 * loads the adapter and merges it into the weights (LoRA; other methods run unmerged), builds the output
 * graph after merging, and then runs rows through it in batches; no adapter branch costs anything per row.
 * The result is the input with one more column, {@code array<float>}: the row's output values, flattened.
 */
public final class SparkScoring {

    /** Ready models per JVM, by base name and adapter path; one per task running at once. */
    private static final Map<String, ConcurrentLinkedQueue<ScoringModel>> MODELS = new ConcurrentHashMap<>();

    private SparkScoring() {
    }

    /**
     * Scores {@code data}. The adapter directory must be readable by every executor; it is checked against
     * the model on the driver first, so an adapter that does not fit fails before any task starts.
     */
    public static <M> Dataset<Row> score(Dataset<Row> data, ScoringJob<M> job, Path adapterDirectory, String outputColumn, int batchSize) {
        if (batchSize < 1) {
            throw new IllegalArgumentException("batchSize must be at least 1, got " + batchSize);
        }
        List<String> missing = new ArrayList<>(job.featureColumns());
        missing.removeAll(Set.of(data.columns()));
        if (!missing.isEmpty()) {
            throw new PeftException("The data has no column " + missing + "; " + job.getClass().getSimpleName() + " reads "
                    + job.featureColumns() + " and the data has " + Arrays.toString(data.columns()));
        }
        if (Arrays.asList(data.columns()).contains(outputColumn)) {
            throw new PeftException("The data already has a column '" + outputColumn + "': choose another output column name");
        }
        if (!Files.isDirectory(adapterDirectory)) {
            throw new PeftException("No adapter directory at " + adapterDirectory.toAbsolutePath());
        }
        String adapter = adapterDirectory.toAbsolutePath().normalize().toString();
        ScoringModel.create(job, adapter); // on the driver: a misfit adapter fails here, naming the file
        int[] featureIndices = job.featureColumns().stream().mapToInt(name -> data.schema().fieldIndex(name)).toArray();
        StructType schema = data.schema().add(outputColumn, DataTypes.createArrayType(DataTypes.FloatType, false), false);
        MapPartitionsFunction<Row, Row> scoring = rows -> new ScoredRows(job, adapter, rows, batchSize, featureIndices);
        return data.mapPartitions(scoring, Encoders.row(schema));
    }

    /** One model with the adapter merged and its output graph. */
    private record ScoringModel(Object model, String output, org.nd4j.autodiff.samediff.SameDiff sameDiff) {
        static <M> ScoringModel create(ScoringJob<M> job, String adapter) {
            ExecutorAgent.ensure();
            M model = job.createModel(BaseWeightsCache.get(job));
            PeftModel peft = PeftModel.fromPretrained(model, Path.of(adapter));
            if (peft.methods().stream().allMatch(method -> method.peftType().equals("LORA"))) {
                peft.merge();
            }
            String output = job.buildOutput(model);
            return new ScoringModel(model, output, peft.sameDiff());
        }
    }

    /** A partition's rows with their outputs, computed a batch at a time. */
    private static final class ScoredRows implements Iterator<Row> {
        private final ScoringJob<?> job;
        private final String key;
        private final Iterator<Row> input;
        private final int batchSize;
        private final int[] featureIndices;
        private final ScoringModel model;
        private final List<Row> pending = new ArrayList<>();
        private int next;
        private boolean returned;

        ScoredRows(ScoringJob<?> job, String adapter, Iterator<Row> input, int batchSize, int[] featureIndices) {
            this.job = job;
            this.featureIndices = featureIndices;
            this.key = job.baseName() + "\u0000" + adapter;
            this.input = input;
            this.batchSize = batchSize;
            TaskThreads.apply();
            ScoringModel ready = MODELS.computeIfAbsent(key, k -> new ConcurrentLinkedQueue<>()).poll();
            this.model = ready != null ? ready : ScoringModel.create(job, adapter);
        }

        @Override
        public boolean hasNext() {
            if (next < pending.size()) {
                return true;
            }
            if (!input.hasNext()) {
                release();
                return false;
            }
            fill();
            return true;
        }

        @Override
        public Row next() {
            if (!hasNext()) {
                throw new NoSuchElementException();
            }
            return pending.get(next++);
        }

        private void fill() {
            List<Row> batch = new ArrayList<>(batchSize);
            while (batch.size() < batchSize && input.hasNext()) {
                batch.add(input.next());
            }
            List<Row> projected = new ArrayList<>(batch.size());
            for (Row row : batch) {
                Object[] cells = new Object[featureIndices.length];
                for (int i = 0; i < cells.length; i++) {
                    cells[i] = row.get(featureIndices[i]);
                }
                projected.add(RowFactory.create(cells));
            }
            Map<String, INDArray> feed = job.features(projected);
            INDArray output = model.sameDiff().output(feed, model.output()).get(model.output());
            if (output.size(0) != batch.size()) {
                throw new PeftException("The output '" + model.output() + "' has " + output.size(0) + " rows for a batch of "
                        + batch.size() + ": its first axis must be the row");
            }
            pending.clear();
            next = 0;
            for (int row = 0; row < batch.size(); row++) {
                float[] values = output.slice(row).dup().data().asFloat();
                Row in = batch.get(row);
                Object[] cells = new Object[in.size() + 1];
                for (int i = 0; i < in.size(); i++) {
                    cells[i] = in.get(i);
                }
                cells[in.size()] = values;
                pending.add(RowFactory.create(cells));
            }
        }

        private void release() {
            if (!returned) {
                returned = true;
                MODELS.get(key).offer(model);
            }
        }
    }
}
