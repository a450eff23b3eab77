package io.peft4j.samples;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.ParameterCount;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.samples.transformer.TransformerClassifier;
import io.peft4j.samples.transformer.TransformerConfig;
import io.peft4j.runtime.checkpoint.CheckpointOptions;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.stream.Stream;
import java.util.Locale;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * LoRA end to end on a small transformer encoder:
 * <ol>
 *   <li>trains the whole model on {@link KeywordTask}'s base task (full fine-tuning);</li>
 *   <li>loads those weights into a fresh model, attaches LoRA (r = 8 on the query and value
 *       projections, as {@code SelfAttention} declares) and trains only A and B on the shifted task;</li>
 *   <li>prints the trainable-parameter line and the accuracy before and after adaptation;</li>
 *   <li>saves the adapter in Hugging Face PEFT's format, with the base weights and the test predictions,
 *       for {@link LoraReload} to check in a fresh JVM;</li>
 *   <li>merges the adapters into the weights and reports the largest difference between merged and
 *       unmerged logits.</li>
 * </ol>
 * Run it with the agent: {@code java -javaagent:agent/target/peft4j-agent.jar … io.peft4j.samples.LoraDemo}.
 */
public final class LoraDemo {

    /** Sizes of one run. */
    public record Settings(TransformerConfig model, int trainExamples, int testExamples, int batchSize, int baseEpochs,
                           int loraEpochs, double baseLearningRate, double loraLearningRate, long seed) {

        /** The README's configuration: about a minute on two cores. */
        public static Settings standard() {
            return new Settings(new TransformerConfig(32, 16, 64, 4, 2, 128, 8), 4096, 1024, 64, 6, 8, 3e-3, 1e-2, 42);
        }
    }

    /** What a run measured. */
    public record Result(double baseAccuracyOnBaseTask, double accuracyBeforeAdaptation, double accuracyAfterAdaptation,
                         ParameterCount parameters, double mergeMaxAbsoluteDifference, double mergeMaxRelativeDifference,
                         TrainingReport baseTraining, TrainingReport loraTraining) {
    }

    /** Where the demo leaves its adapter, base weights and predictions for {@link LoraReload}. */
    public static final Path DEFAULT_OUTPUT = Path.of("target", "lora-demo");

    public static void main(String[] args) {
        ComputeThreads.apply();
        run(Settings.standard(), System.out, args.length > 0 ? Path.of(args[0]) : DEFAULT_OUTPUT);
    }

    /**
     * Runs the demo and writes to {@code output}: {@code base_model.safetensors} (the fully trained
     * base), {@code adapter/} (the LoRA adapter in PEFT's format) and {@code predictions.safetensors}
     * (the adapted model's test tokens and logits, before merging).
     */
    public static Result run(Settings settings, PrintStream out, Path output) {
        TransformerConfig config = settings.model();
        KeywordTask task = new KeywordTask(config.classes(), config.vocabulary(), config.sequenceLength());
        DataSet baseTrain = task.generate(settings.trainExamples(), false, settings.seed());
        DataSet baseTest = task.generate(settings.testExamples(), false, settings.seed() + 1);
        DataSet shiftedTrain = task.generate(settings.trainExamples(), true, settings.seed() + 2);
        DataSet shiftedTest = task.generate(settings.testExamples(), true, settings.seed() + 3);

        out.println("== 1. Full training on the base task ==");
        TransformerClassifier base = new TransformerClassifier(SameDiff.create(), config, settings.seed());
        Graph baseGraph = Graph.build(base);
        TrainingReport baseTraining = SameDiffTrainer.fit(base.sameDiff(), trainingConfig(settings.baseLearningRate()),
                batches(baseTrain, settings.batchSize()), settings.baseEpochs());
        double baseAccuracy = baseGraph.accuracy(baseTest);
        out.printf(Locale.ROOT, "base model accuracy on the base task: %.4f%n", baseAccuracy);

        out.println("== 2. LoRA adaptation to the shifted task (r = 8 on query and value) ==");
        TransformerClassifier adapted = new TransformerClassifier(SameDiff.create(), config, settings.seed());
        adapted.load(base.parameters());
        PeftModel peft = PeftModel.builder(adapted).only(LoRA.class).attach();
        out.println(peft.parameterCount());
        Graph adaptedGraph = Graph.build(adapted);
        double before = adaptedGraph.accuracy(shiftedTest);
        out.printf(Locale.ROOT, "accuracy on the shifted task before adaptation: %.4f%n", before);
        TrainingReport loraTraining = peft.train(trainingConfig(settings.loraLearningRate()),
                batches(shiftedTrain, settings.batchSize()), settings.loraEpochs());
        double after = adaptedGraph.accuracy(shiftedTest);
        out.printf(Locale.ROOT, "accuracy on the shifted task after adaptation:  %.4f (gain %+.4f)%n", after, after - before);

        INDArray unmerged = adaptedGraph.logits(shiftedTest.getFeatures());
        out.println("== 3. Save ==");
        Path adapterDirectory = peft.save(output.resolve(ADAPTER), CheckpointOptions.defaults().withBaseModel(BASE_MODEL_NAME));
        SafetensorsFile.write(output.resolve(BASE_WEIGHTS), base.parameters(), TensorDtype.F32, Map.of("format", "pt"));
        Map<String, INDArray> predictions = new LinkedHashMap<>();
        predictions.put(TOKENS, shiftedTest.getFeatures());
        predictions.put(LOGITS, unmerged);
        SafetensorsFile.write(output.resolve(PREDICTIONS), predictions, TensorDtype.F32, Map.of("format", "pt"));
        out.printf(Locale.ROOT, "adapter saved to %s (%,d bytes); base weights and test predictions beside it%n",
                adapterDirectory, directorySize(adapterDirectory));

        out.println("== 4. Merge ==");
        peft.merge();
        Graph mergedGraph = Graph.build(adapted); // built after merge(): no LoRA branch in it
        INDArray merged = mergedGraph.logits(shiftedTest.getFeatures());
        double absolute = Transforms.abs(merged.sub(unmerged)).maxNumber().doubleValue();
        double relative = absolute / unmerged.amaxNumber().doubleValue();
        out.printf(Locale.ROOT, "merged vs unmerged logits: max |difference| = %.3e (relative to max |logit|: %.3e)%n",
                absolute, relative);
        out.printf(Locale.ROOT, "merged model accuracy on the shifted task: %.4f%n", mergedGraph.accuracy(shiftedTest));
        return new Result(baseAccuracy, before, after, peft.parameterCount(), absolute, relative, baseTraining, loraTraining);
    }

    static final String ADAPTER = "adapter";
    static final String BASE_WEIGHTS = "base_model.safetensors";
    static final String PREDICTIONS = "predictions.safetensors";
    static final String TOKENS = "tokens";
    static final String LOGITS = "logits";
    static final String BASE_MODEL_NAME = "peft4j-samples/keyword-transformer";

    private static long directorySize(Path directory) {
        try (Stream<Path> files = Files.list(directory)) {
            return files.mapToLong(file -> file.toFile().length()).sum();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static TrainingConfig trainingConfig(double learningRate) {
        return TrainingConfig.builder().updater(new Adam(learningRate))
                .dataSetFeatureMapping(Graph.TOKENS).dataSetLabelMapping(Graph.LABELS).build();
    }

    private static DataSetIterator batches(DataSet data, int batchSize) {
        return new BatchIterator(data, batchSize);
    }

    /** The model's forward graph with its placeholders and loss. */
    record Graph(TransformerClassifier model, SDVariable logits) {
        static final String TOKENS = LoraDemo.TOKENS;
        static final String LABELS = "labels";

        static Graph build(TransformerClassifier model) {
            SameDiff sd = model.sameDiff();
            SDVariable tokens = sd.hasVariable(TOKENS) ? sd.getVariable(TOKENS)
                    : sd.placeHolder(TOKENS, DataType.INT32, -1, model.config().sequenceLength());
            SDVariable labels = sd.hasVariable(LABELS) ? sd.getVariable(LABELS)
                    : sd.placeHolder(LABELS, DataType.FLOAT, -1, model.config().classes());
            SDVariable logits = model.forward(tokens);
            SDVariable loss = sd.loss.softmaxCrossEntropy(labels, logits, null);
            sd.setLossVariables(loss);
            return new Graph(model, logits);
        }

        INDArray logits(INDArray tokens) {
            return model.sameDiff().output(Map.of(TOKENS, tokens), logits.name()).get(logits.name());
        }

        double accuracy(DataSet data) {
            INDArray predicted = logits(data.getFeatures()).argMax(1);
            INDArray actual = data.getLabels().argMax(1);
            return predicted.eq(actual).castTo(DataType.FLOAT).meanNumber().doubleValue();
        }
    }
}
