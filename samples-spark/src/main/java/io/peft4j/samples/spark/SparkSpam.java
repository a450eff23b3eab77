package io.peft4j.samples.spark;

import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.samples.minilm.MiniLmTokenizer;
import io.peft4j.samples.spam.Email;
import io.peft4j.samples.spam.SpamAssassinCorpus;
import io.peft4j.samples.spam.SpamBatches;
import io.peft4j.samples.spam.SpamClassifier;
import io.peft4j.spark.SparkAdapterTraining;
import io.peft4j.spark.SparkScoring;
import io.peft4j.spark.TrainedAdapter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HashSet;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Set;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;

/**
 * The SpamAssassin LoRA of the Quickstart trained twice on the same 768 messages in the same order (one
 * epoch, global batch 16, Adam 2e-3): once in this process with {@code PeftModel.train}, once data-parallel
 * on Spark {@code local[2]} with two workers of 8 rows each; then every one of the 6,030 messages scored
 * with the Spark-trained adapter. Prints both loss curves, the gradient traffic, step times and scoring
 * throughput, and writes them to {@code target/spark-spam/}.
 */
public final class SparkSpam {

    private static final int TRAIN = 768;
    private static final int GLOBAL_BATCH = 16;
    private static final int WORKERS = 2;
    private static final double LEARNING_RATE = 2e-3;
    private static final Path OUTPUT = Path.of("target", "spark-spam");

    private SparkSpam() {
    }

    public static void main(String[] args) throws Exception {
        ComputeThreads.apply();
        SpamAssassinCorpus.Loaded corpus = SpamAssassinCorpus.load(SpamAssassinCorpus.dataDirectory());
        SpamAssassinCorpus.Split split = SpamAssassinCorpus.split(corpus.emails(), SpamJob.SEED, 0.7, 0.1);
        List<Email> train = SpamAssassinCorpus.stratifiedSubset(split.train(), TRAIN);
        System.out.printf(Locale.ROOT, "SpamAssassin: %d messages; training on %d (seed %d split), global batch %d, one epoch%n",
                corpus.emails().size(), train.size(), SpamJob.SEED, GLOBAL_BATCH);
        Files.createDirectories(OUTPUT);
        deleteTree(OUTPUT.resolve("checkpoints")); // a new run; the previous run's checkpoints would be refused

        System.out.println("== one process: PeftModel.train ==");
        SpamJob job = new SpamJob();
        SpamClassifier single = job.createModel(job.loadBase());
        PeftModel peft = job.attach(single);
        job.buildLoss(single);
        SpamBatches batches;
        try (MiniLmTokenizer tokenizer = new MiniLmTokenizer()) {
            batches = new SpamBatches(train, tokenizer, SpamJob.MAX_LENGTH, GLOBAL_BATCH);
        }
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(LEARNING_RATE))
                .dataSetFeatureMapping(io.peft4j.samples.spam.SpamGraph.IDS, io.peft4j.samples.spam.SpamGraph.TYPES,
                        io.peft4j.samples.spam.SpamGraph.MASK)
                .dataSetLabelMapping(io.peft4j.samples.spam.SpamGraph.LABELS).build();
        TrainingReport local = peft.train(config, batches, 1, new ProgressListener(System.out, 8, batches.size()));

        SparkSession spark = SparkSession.builder().master("local[" + WORKERS + ",4]").appName("peft4j SparkSpam")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
                .config("spark.sql.shuffle.partitions", String.valueOf(WORKERS)).getOrCreate();
        try {
            StructType schema = new StructType().add("id", DataTypes.StringType).add("text", DataTypes.StringType)
                    .add("spam", DataTypes.IntegerType);
            Dataset<Row> trainRows = spark.createDataFrame(rows(train), schema);
            System.out.printf(Locale.ROOT, "== Spark local[%d]: %d workers x %d rows per step, gradients through allGather ==%n",
                    WORKERS, WORKERS, GLOBAL_BATCH / WORKERS);
            TrainedAdapter<SpamClassifier> distributed = SparkAdapterTraining.builder(job).workers(WORKERS).globalBatch(GLOBAL_BATCH).epochs(1)
                    .updater(new Adam(LEARNING_RATE)).checkpoints(OUTPUT.resolve("checkpoints"), 16).build().fit(trainRows);
            Path adapter = distributed.save(OUTPUT.resolve("adapter"));

            StringBuilder report = new StringBuilder();
            report.append("| step | loss, one process | loss, 2 Spark workers |\n|---:|---:|---:|\n");
            double worstLoss = 0;
            for (int step = 0; step < local.losses().length; step++) {
                double difference = Math.abs(local.losses()[step] - distributed.losses().get(step));
                worstLoss = Math.max(worstLoss, difference);
                if (step % 4 == 0 || step == local.losses().length - 1) {
                    report.append(String.format(Locale.ROOT, "| %d | %.4f | %.4f |%n", step + 1, local.losses()[step], distributed.losses().get(step)));
                }
            }
            double worstParameter = 0;
            Map<String, INDArray> trained = distributed.parameters();
            long floats = 0;
            for (SDVariable variable : single.sameDiff().variables()) {
                if (variable.getVariableType() == VariableType.VARIABLE) {
                    worstParameter = Math.max(worstParameter, variable.getArr().sub(trained.get(variable.name())).amaxNumber().doubleValue());
                    floats += variable.getArr().length();
                }
            }
            long fullParameters = 10_647_554; // SpamComparison's full fine-tuning row (embeddings frozen)
            double localMedian = median(Arrays.stream(local.stepSeconds()).skip(1).boxed().toList());
            double sparkMedian = median(distributed.stepSeconds().subList(1, distributed.stepSeconds().size()));
            double exchangeMedian = median(distributed.exchangeSeconds().subList(1, distributed.exchangeSeconds().size()));
            report.append(String.format(Locale.ROOT, "%nmax |loss difference| over %d steps: %.3e; max |parameter difference| after training: %.3e%n",
                    local.losses().length, worstLoss, worstParameter));
            report.append(String.format(Locale.ROOT, "gradient message per worker per step: %,d bytes of Base64 for %,d trainable values (%,d bytes raw); "
                    + "full fine-tuning would send %,d values: %,d bytes raw, %,d as Base64%n", distributed.bytesSentPerWorkerPerStep(), floats,
                    floats * 4 + 8, fullParameters, fullParameters * 4 + 8, (fullParameters * 4 + 8 + 2) / 3 * 4));
            report.append(String.format(Locale.ROOT, "median step: one process (16 rows) %.3f s; Spark, 2 workers (8 rows each) %.3f s, of which "
                    + "%.3f s in allGather; stage %.1f s for %d steps%n", localMedian, sparkMedian, exchangeMedian, distributed.seconds(),
                    distributed.losses().size()));

            System.out.println("== scoring every message with the Spark-trained adapter (merged once per executor) ==");
            Dataset<Row> everything = spark.createDataFrame(rows(corpus.emails()), schema).repartition(WORKERS);
            everything.cache().count();
            long started = System.nanoTime();
            List<Row> scored = SparkScoring.score(everything, job, adapter, "logits", 32).select("id", "spam", "logits").collectAsList();
            double seconds = (System.nanoTime() - started) / 1e9;
            Set<String> test = new HashSet<>();
            split.test().forEach(email -> test.add(email.id()));
            int correct = 0;
            int testCorrect = 0;
            int testRows = 0;
            for (Row row : scored) {
                List<Object> logits = row.getList(2);
                boolean spamPredicted = ((Number) logits.get(1)).floatValue() > ((Number) logits.get(0)).floatValue();
                boolean right = spamPredicted == (row.getInt(1) == 1);
                correct += right ? 1 : 0;
                if (test.contains(row.getString(0))) {
                    testRows++;
                    testCorrect += right ? 1 : 0;
                }
            }
            report.append(String.format(Locale.ROOT, "scored %,d messages in %.1f s (%.1f rows/s, batches of 32, %d partitions): accuracy %.4f on all, "
                    + "%.4f on the %,d test-split messages%n", scored.size(), seconds, scored.size() / seconds, WORKERS,
                    (double) correct / scored.size(), (double) testCorrect / testRows, testRows));
            System.out.println();
            System.out.print(report);
            Files.writeString(OUTPUT.resolve("results.md"), report.toString());
            System.out.println("adapter saved to " + adapter + "; results in " + OUTPUT.resolve("results.md"));
        } finally {
            spark.stop();
        }
    }

    private static void deleteTree(Path root) throws java.io.IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (java.util.stream.Stream<Path> paths = Files.walk(root)) {
            for (Path path : paths.sorted(java.util.Comparator.reverseOrder()).toList()) {
                Files.delete(path);
            }
        }
    }

    private static List<Row> rows(List<Email> emails) {
        List<Row> rows = new ArrayList<>(emails.size());
        for (Email email : emails) {
            rows.add(RowFactory.create(email.id(), email.text(), email.spam() ? 1 : 0));
        }
        return rows;
    }

    private static double median(List<Double> values) {
        List<Double> sorted = new ArrayList<>(values);
        sorted.sort(null);
        return sorted.isEmpty() ? Double.NaN : sorted.get(sorted.size() / 2);
    }
}
