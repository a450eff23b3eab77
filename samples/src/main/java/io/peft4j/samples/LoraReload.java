package io.peft4j.samples;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.samples.transformer.TransformerClassifier;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Locale;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * Loads what {@link LoraDemo} saved into a model built from scratch (meant for a JVM of its own, with
 * the agent): the base weights, then the LoRA adapter from PEFT's files, and checks that it predicts
 * the saved test logits bit for bit. Exits with 1 if it does not.
 */
public final class LoraReload {

    public static void main(String[] args) {
        ComputeThreads.apply();
        Path output = args.length > 0 ? Path.of(args[0]) : LoraDemo.DEFAULT_OUTPUT;
        double difference = verify(output, LoraDemo.Settings.standard(), System.out);
        if (difference != 0) {
            System.exit(1);
        }
    }

    /** Returns the largest absolute difference between the reloaded model's logits and the saved ones. */
    public static double verify(Path output, LoraDemo.Settings settings, PrintStream out) {
        TransformerClassifier model = new TransformerClassifier(SameDiff.create(), settings.model(), settings.seed() + 1000);
        model.load(SafetensorsFile.read(output.resolve(LoraDemo.BASE_WEIGHTS)));
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).attach();
        peft.load(output.resolve(LoraDemo.ADAPTER));
        LoraDemo.Graph graph = LoraDemo.Graph.build(model);

        Map<String, INDArray> saved = SafetensorsFile.read(output.resolve(LoraDemo.PREDICTIONS));
        INDArray logits = graph.logits(saved.get(LoraDemo.TOKENS).castTo(DataType.INT32));
        double difference = Transforms.abs(logits.sub(saved.get(LoraDemo.LOGITS))).maxNumber().doubleValue();
        out.printf(Locale.ROOT, "reloaded %s into a fresh model: max |logit difference| vs the saved predictions = %s%s%n",
                output.resolve(LoraDemo.ADAPTER), difference, difference == 0 ? " (bit-identical)" : "");
        return difference;
    }
}
