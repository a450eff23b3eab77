package io.peft4j.spark;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import io.peft4j.runtime.testmodel.ClassifierModel;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Dataset;
import org.apache.spark.sql.Row;
import org.apache.spark.sql.RowFactory;
import org.apache.spark.sql.SparkSession;
import org.apache.spark.sql.types.DataTypes;
import org.apache.spark.sql.types.StructType;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.ViewIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;
import scala.jdk.javaapi.CollectionConverters;

/**
 * Data-parallel adapter training on {@code local[2]} (two barrier tasks in this JVM, which runs with the
 * agent) against single-process training, a failed stage that Spark retries, scoring, and bad input.
 */
class SparkAdapterTrainingTest {

    private static final int ROWS = 64;
    private static final int GLOBAL_BATCH = 8;
    private static final int EPOCHS = 2;
    private static SparkSession spark;

    @TempDir
    Path dir;

    /** Two task slots in this JVM; a task may fail 4 times before the job does, as on a cluster. */
    static SparkSession localSession() {
        return SparkSession.builder().master("local[2,4]").appName("peft4j-spark-test")
                .config("spark.ui.enabled", "false").config("spark.driver.host", "127.0.0.1")
                .config("spark.driver.bindAddress", "127.0.0.1").config("spark.sql.shuffle.partitions", "2")
                .getOrCreate();
    }

    @BeforeAll
    static void startSpark() {
        spark = localSession();
    }

    @AfterAll
    static void stopSpark() {
        spark.stop();
    }

    /** Rows with 6 features from a fixed generator and a label that depends on them. */
    private static List<Row> rows() {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(5);
        INDArray features = Nd4j.rand(random, ROWS, ClassifierModel.IN).castTo(DataType.FLOAT);
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < ROWS; i++) {
            float[] values = features.getRow(i).dup().data().asFloat();
            List<Float> boxed = new ArrayList<>();
            for (float value : values) {
                boxed.add(value);
            }
            int label = values[0] + values[1] > 1 ? 2 : values[2] > 0.5 ? 1 : 0;
            rows.add(RowFactory.create(CollectionConverters.asScala(boxed).toSeq(), label)); // array<float> is a Scala Seq in a Row
        }
        return rows;
    }

    private static Dataset<Row> dataset() {
        return dataset(spark);
    }

    static Dataset<Row> dataset(SparkSession spark) {
        StructType schema = new StructType().add("features", DataTypes.createArrayType(DataTypes.FloatType), false)
                .add("label", DataTypes.IntegerType, false);
        return spark.createDataFrame(rows(), schema).coalesce(3); // partitioning unlike the workers', on purpose
    }

    private static Adam adam() {
        return new Adam(0.01);
    }

    /** The same job trained by PeftModel.train in this process: the reference. */
    private static Map<String, INDArray> singleProcess(List<Double> losses) {
        ClassifierJob job = new ClassifierJob(null, 0);
        ClassifierModel model = job.createModel(ClassifierJob.generatedBase());
        PeftModel peft = job.attach(model);
        job.buildLoss(model);
        Map<String, INDArray> batch = job.batch(rows());
        DataSet data = new DataSet(batch.get("x"), batch.get("y"));
        TrainingConfig config = TrainingConfig.builder().updater(adam()).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
        TrainingReport report = peft.train(config, new ViewIterator(data, GLOBAL_BATCH), EPOCHS, new ProgressListener(null, 1000));
        for (double loss : report.losses()) {
            losses.add(loss);
        }
        Map<String, INDArray> trained = new LinkedHashMap<>();
        for (SDVariable variable : model.sd.variables()) {
            if (variable.getVariableType() == org.nd4j.autodiff.samediff.VariableType.VARIABLE) {
                trained.put(variable.name(), variable.getArr().dup());
            }
        }
        return trained;
    }

    private static TrainedAdapter<ClassifierModel> trainOnSpark(ClassifierJob job, Path checkpoints) {
        SparkAdapterTraining.Builder<ClassifierModel> builder = SparkAdapterTraining.builder(job).workers(2).globalBatch(GLOBAL_BATCH)
                .epochs(EPOCHS).updater(adam());
        if (checkpoints != null) {
            builder.checkpoints(checkpoints, 3);
        }
        return builder.build().fit(dataset());
    }

    @Test
    void twoWorkersTrainTheSameAdapterAsOneProcess() {
        List<Double> referenceLosses = new ArrayList<>();
        Map<String, INDArray> reference = singleProcess(referenceLosses);
        TrainedAdapter<ClassifierModel> spark = trainOnSpark(new ClassifierJob(null, 0), null);

        assertEquals(ROWS / GLOBAL_BATCH * EPOCHS, spark.losses().size());
        Map<String, INDArray> trained = spark.parameters();
        assertEquals(reference.keySet(), trained.keySet(), "LoRA A/B of encoder and hidden, and the head");
        double worst = 0;
        for (String name : reference.keySet()) {
            worst = Math.max(worst, reference.get(name).sub(trained.get(name)).amaxNumber().doubleValue());
        }
        System.out.printf("2 workers vs one process after %d Adam steps: max |parameter difference| %.3e, first/last loss %.5f/%.5f vs %.5f/%.5f%n",
                spark.losses().size(), worst, spark.losses().get(0), spark.losses().get(spark.losses().size() - 1), referenceLosses.get(0),
                referenceLosses.get(referenceLosses.size() - 1));
        // Averaging two shard means instead of one batch mean changes float rounding only; Adam's normalised steps keep it small.
        assertTrue(worst < 1e-5, "max |parameter difference| " + worst);
        for (int step = 0; step < referenceLosses.size(); step++) {
            assertEquals(referenceLosses.get(step), spark.losses().get(step), 1e-5, "loss of step " + step);
        }
        assertTrue(reference.values().stream().anyMatch(value -> value.amaxNumber().doubleValue() > 0), "something trained");
        // encoder A [6, 2] and B [2, 8], hidden A [8, 3] and B [3, 8], head [8, 3] and [3]: 103 floats, and the loss as a double
        assertEquals((long) Math.ceil((8 + 4 * 103) / 3.0) * 4, spark.bytesSentPerWorkerPerStep(), "Base64 of 103 floats and a double");
    }

    /**
     * Bit for bit when every replayed op computes libnd4j's bits: a resumed worker runs its first two
     * steps in SameDiff, where the unfailed one replayed them, and peft4j's product kernels sum LoRA's
     * thin products in another order than BLAS (with them on, the two runs agree to rounding).
     */
    @Test
    void aFailedStageIsRetriedFromTheLastCheckpointAndEndsWithTheSameAdapter() {
        System.setProperty("peft4j.productKernels", "false");
        TrainedAdapter<ClassifierModel> unfailed;
        TrainedAdapter<ClassifierModel> retried;
        try {
            unfailed = trainOnSpark(new ClassifierJob(null, 0), dir.resolve("unfailed"));
            retried = trainOnSpark(new ClassifierJob(null, 8), dir.resolve("failed"));
        } finally {
            System.clearProperty("peft4j.productKernels");
        }
        assertEquals(6, retried.resumedAtStep(), "the retried stage resumed from the step-6 checkpoint");
        assertEquals(0, unfailed.resumedAtStep());
        Map<String, INDArray> expected = unfailed.parameters();
        Map<String, INDArray> actual = retried.parameters();
        for (String name : expected.keySet()) {
            assertArrayEquals(expected.get(name).data().asFloat(), actual.get(name).data().asFloat(), 0f, name);
        }
        assertEquals(unfailed.losses(), retried.losses());

        PeftException earlier = assertThrows(PeftException.class, () -> trainOnSpark(new ClassifierJob(null, 0), dir.resolve("unfailed")));
        assertTrue(earlier.getMessage().contains("holds the checkpoint of step 15 of an earlier run: pass resume(true)"), earlier.getMessage());
        TrainedAdapter<ClassifierModel> continued = SparkAdapterTraining.builder(new ClassifierJob(null, 0)).workers(2).globalBatch(GLOBAL_BATCH)
                .epochs(EPOCHS).updater(adam()).checkpoints(dir.resolve("unfailed"), 3).resume(true).build().fit(dataset());
        assertEquals(15, continued.resumedAtStep(), "resume(true) continues the earlier run from its last checkpoint");
        continued.parameters().forEach((name, value) -> assertArrayEquals(expected.get(name).data().asFloat(), value.data().asFloat(), 0f, name));
    }

    @Test
    void theSavedAdapterScoresLikeTheModelItCameFrom() {
        TrainedAdapter<ClassifierModel> trained = trainOnSpark(new ClassifierJob(null, 0), null);
        Path adapter = trained.save(dir.resolve("adapter"));

        ClassifierJob job = new ClassifierJob(null, 0);
        Dataset<Row> scored = SparkScoring.score(dataset(), job, adapter, "logits", 5);
        List<Row> out = scored.collectAsList();
        assertEquals(ROWS, out.size());

        ClassifierModel model = job.createModel(ClassifierJob.generatedBase());
        PeftModel.fromPretrained(model, adapter);
        String output = job.buildOutput(model);
        List<Row> rows = rows();
        INDArray expected = model.sd.output(job.features(rows), output).get(output);
        double worst = 0;
        for (int index = 0; index < ROWS; index++) {
            Row row = out.get(index); // mapPartitions keeps the rows' order
            assertEquals(rows.get(index).getList(0), row.getList(0), "row " + index + " is in its place");
            float[] logits = toFloats(row.getList(2));
            assertEquals(ClassifierModel.CLASSES, logits.length);
            for (int c = 0; c < logits.length; c++) {
                worst = Math.max(worst, Math.abs(logits[c] - expected.getFloat(index, c)));
            }
        }
        System.out.printf("scoring (merged) vs the unmerged adapter in one process: max |logit difference| %.3e%n", worst);
        assertTrue(worst < 1e-5, "merged scoring differs by " + worst);
    }

    @Test
    void theAdapterTheDriverSavedLoadsInAFreshJvm() throws Exception {
        Path base = dir.resolve("base.safetensors");
        SafetensorsFile.write(base, ClassifierJob.generatedBase(), TensorDtype.F32, Map.of());
        ClassifierJob job = new ClassifierJob(base.toString(), 0);
        TrainedAdapter<ClassifierModel> trained = trainOnSpark(job, null);
        Path adapter = trained.save(dir.resolve("adapter"));

        INDArray x = job.features(rows()).get("x");
        Path inputs = dir.resolve("inputs.safetensors");
        SafetensorsFile.write(inputs, Map.of("x", x), TensorDtype.F32, Map.of());
        ClassifierModel here = job.createModel(job.loadBase());
        PeftModel peft = job.attach(here);
        String output = job.buildOutput(here);
        trained.applyTo(peft);
        INDArray expected = here.sd.output(Map.of("x", x), output).get(output);

        Path outputs = dir.resolve("outputs.safetensors");
        List<String> command = new ArrayList<>(List.of(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-javaagent:" + System.getProperty("peft4j.agent.jar"), "-cp", System.getProperty("java.class.path"),
                FreshJvmLoad.class.getName(), base.toString(), adapter.toString(), inputs.toString(), outputs.toString()));
        Process process = new ProcessBuilder(command).redirectErrorStream(true).start();
        String log = new String(process.getInputStream().readAllBytes(), java.nio.charset.StandardCharsets.UTF_8);
        assertEquals(0, process.waitFor(), log);
        INDArray actual = SafetensorsFile.read(outputs).get("logits");
        assertArrayEquals(expected.data().asFloat(), actual.data().asFloat(), 0f, "the fresh JVM reproduces the trained model's logits");
    }

    private static float[] toFloats(List<Object> values) {
        float[] floats = new float[values.size()];
        for (int i = 0; i < floats.length; i++) {
            floats[i] = ((Number) values.get(i)).floatValue();
        }
        return floats;
    }

    @Test
    void badInputFailsBeforeAnyTaskStarts() {
        ClassifierJob job = new ClassifierJob(null, 0);
        IllegalArgumentException indivisible = assertThrows(IllegalArgumentException.class,
                () -> SparkAdapterTraining.builder(job).workers(3).globalBatch(8).build());
        assertTrue(indivisible.getMessage().contains("does not divide among 3 workers"), indivisible.getMessage());

        PeftException columns = assertThrows(PeftException.class,
                () -> SparkAdapterTraining.builder(job).build().fit(dataset().withColumnRenamed("label", "target")));
        assertTrue(columns.getMessage().contains("no column [label]"), columns.getMessage());

        String missingBase = dir.resolve("nowhere/base.safetensors").toString();
        PeftException base = assertThrows(PeftException.class,
                () -> SparkAdapterTraining.builder(new ClassifierJob(missingBase, 0)).build().fit(dataset()));
        assertTrue(base.getMessage().contains("cannot load the base '" + missingBase + "'") && base.getMessage().contains("no readable file"),
                base.getMessage());

        TwoLayerModel other = new TwoLayerModel(DataType.FLOAT, 1);
        Path foreign = PeftModel.attach(other).save(dir.resolve("foreign"));
        assertThrows(CheckpointException.class, () -> SparkScoring.score(dataset(), job, foreign, "logits", 4));

        PeftException output = assertThrows(PeftException.class, () -> SparkScoring.score(dataset(), job, foreign, "label", 4));
        assertTrue(output.getMessage().contains("already has a column 'label'"), output.getMessage());
    }

    @Test
    void aBaseReadFromAFileIsLoadedOncePerJvm() {
        Path file = dir.resolve("base.safetensors");
        SafetensorsFile.write(file, ClassifierJob.generatedBase(), TensorDtype.F32, Map.of());
        int before = BaseWeightsCache.size();
        TrainedAdapter<ClassifierModel> fromFile = trainOnSpark(new ClassifierJob(file.toString(), 0), null);
        assertEquals(before + 1, BaseWeightsCache.size(), "one entry for this base, shared by both workers and the driver");
        TrainedAdapter<ClassifierModel> generated = trainOnSpark(new ClassifierJob(null, 0), null);
        Map<String, INDArray> a = fromFile.parameters();
        Map<String, INDArray> b = generated.parameters();
        a.forEach((name, value) -> assertArrayEquals(value.data().asFloat(), b.get(name).data().asFloat(), 0f, name));
    }
}
