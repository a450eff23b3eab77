package com.example.intent;

import io.peft4j.runtime.ParameterCount;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.dataset.ViewIterator;
import org.nd4j.linalg.dataset.api.iterator.DataSetIterator;
import org.nd4j.linalg.learning.config.Adam;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * The whole life of an adapter in an application: train a base model, adapt it to a new release's
 * intents with LoRA, save the adapter in Hugging Face PEFT's format, load it into a fresh model, merge it
 * and ship the merged weights, which a model without peft4j runs as is. Start it with
 * {@code -javaagent:peft4j-agent.jar} ({@code mvn -B -q compile exec:exec} does).
 */
public final class AdaptIntents {

    /** Sizes of one run. */
    public record Settings(int trainExamples, int testExamples, int batchSize, int baseEpochs, int loraEpochs, long seed) {
        public static Settings standard() {
            return new Settings(4096, 1024, 64, 8, 8, 7);
        }
    }

    /** What one run measured. */
    public record Result(double baseAccuracy, double accuracyBefore, double accuracyAfter, ParameterCount parameters,
                         double reloadMaxDifference, double mergedMaxDifference, Path adapter, Path merged) {
    }

    public static void main(String[] args) {
        run(Settings.standard(), System.out, Path.of(args.length > 0 ? args[0] : "target/intents"));
    }

    public static Result run(Settings settings, PrintStream out, Path output) {
        DataSet baseTrain = IntentData.generate(settings.trainExamples(), false, settings.seed());
        DataSet baseTest = IntentData.generate(settings.testExamples(), false, settings.seed() + 1);
        DataSet newTrain = IntentData.generate(settings.trainExamples(), true, settings.seed() + 2);
        DataSet newTest = IntentData.generate(settings.testExamples(), true, settings.seed() + 3);

        out.println("== base model, all weights trained ==");
        IntentModel base = new IntentModel(settings.seed());
        Graph baseGraph = Graph.of(base);
        SameDiffTrainer.fit(base.sameDiff(), training(3e-3), batches(baseTrain, settings.batchSize()), settings.baseEpochs());
        double baseAccuracy = baseGraph.accuracy(baseTest);
        out.printf(Locale.ROOT, "base accuracy on the old intents: %.4f%n", baseAccuracy);
        Path baseFile = output.resolve("base.safetensors");
        SafetensorsFile.write(baseFile, base.weights(), TensorDtype.F32, Map.of());

        out.println("== LoRA on the new release's intents ==");
        IntentModel model = new IntentModel(settings.seed());
        model.load(SafetensorsFile.read(baseFile));
        PeftModel peft = PeftModel.attach(model);                       // the two @LoRA fields get A and B; the rest is frozen
        out.println(peft.parameterCount());
        Graph graph = Graph.of(model);                                  // built after attach, so the LoRA branches join
        double before = graph.accuracy(newTest);
        peft.train(training(1e-2), batches(newTrain, settings.batchSize()), settings.loraEpochs());
        double after = graph.accuracy(newTest);
        out.printf(Locale.ROOT, "accuracy on the new intents: %.4f before, %.4f after%n", before, after);
        INDArray adaptedLogits = graph.logits(newTest.getFeatures());
        Path adapter = peft.save(output.resolve("adapter"));
        out.println("adapter saved to " + adapter);

        IntentModel fresh = new IntentModel(settings.seed() + 100);    // other initial weights: everything comes from files
        fresh.load(SafetensorsFile.read(baseFile));
        PeftModel.fromPretrained(fresh, adapter);
        double reload = maxDifference(adaptedLogits, Graph.of(fresh).logits(newTest.getFeatures()));
        out.printf(Locale.ROOT, "reloaded into a fresh model: max |logit difference| %.3e%n", reload);

        peft.merge();                                                   // W += s·A·B in place
        Path merged = output.resolve("merged.safetensors");
        SafetensorsFile.write(merged, model.weights(), TensorDtype.F32, Map.of());
        IntentModel deployed = new IntentModel(settings.seed());       // no PeftModel: runs the plain model code
        deployed.load(SafetensorsFile.read(merged));
        Graph deployedGraph = Graph.of(deployed);
        double mergedDifference = maxDifference(adaptedLogits, deployedGraph.logits(newTest.getFeatures()));
        out.printf(Locale.ROOT, "merged weights in a plain model: max |logit difference| %.3e, accuracy %.4f%n",
                mergedDifference, deployedGraph.accuracy(newTest));
        return new Result(baseAccuracy, before, after, peft.parameterCount(), reload, mergedDifference, adapter, merged);
    }

    private static TrainingConfig training(double learningRate) {
        return TrainingConfig.builder().updater(new Adam(learningRate))
                .dataSetFeatureMapping(Graph.FEATURES).dataSetLabelMapping(Graph.LABELS).build();
    }

    private static DataSetIterator batches(DataSet data, int batchSize) {
        return new ViewIterator(data, batchSize);
    }

    private static double maxDifference(INDArray expected, INDArray actual) {
        return Transforms.abs(expected.sub(actual)).maxNumber().doubleValue();
    }

    /** The model's logits with its placeholders and loss, in the model's graph. */
    record Graph(SameDiff sd, SDVariable logits) {
        static final String FEATURES = "features";
        static final String LABELS = "labels";

        static Graph of(IntentModel model) {
            SameDiff sd = model.sameDiff();
            SDVariable features = sd.hasVariable(FEATURES) ? sd.getVariable(FEATURES)
                    : sd.placeHolder(FEATURES, DataType.FLOAT, -1, IntentModel.FEATURES);
            SDVariable labels = sd.hasVariable(LABELS) ? sd.getVariable(LABELS)
                    : sd.placeHolder(LABELS, DataType.FLOAT, -1, IntentModel.INTENTS);
            SDVariable logits = model.logits(features);
            sd.setLossVariables(sd.loss.softmaxCrossEntropy(labels, logits, null));
            return new Graph(sd, logits);
        }

        INDArray logits(INDArray features) {
            return sd.output(Map.of(FEATURES, features), logits.name()).get(logits.name());
        }

        double accuracy(DataSet data) {
            INDArray predicted = logits(data.getFeatures()).argMax(1);
            return predicted.eq(data.getLabels().argMax(1)).castTo(DataType.FLOAT).meanNumber().doubleValue();
        }
    }
}
