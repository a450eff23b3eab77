package io.peft4j.spark;

import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import io.peft4j.runtime.testmodel.ClassifierModel;
import java.nio.file.Path;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Run in a JVM of its own by {@link SparkAdapterTrainingTest}: loads the base and the adapter the Spark
 * driver saved, runs the model on the given inputs and writes its outputs. Arguments: base file, adapter
 * directory, inputs file (tensor "x"), output file.
 */
public final class FreshJvmLoad {
    private FreshJvmLoad() {
    }

    public static void main(String[] args) throws Exception {
        ClassifierJob job = new ClassifierJob(args[0], 0);
        ClassifierModel model = job.createModel(job.loadBase());
        PeftModel.fromPretrained(model, Path.of(args[1]));
        String output = job.buildOutput(model);
        INDArray x = SafetensorsFile.read(Path.of(args[2])).get("x");
        INDArray logits = model.sd.output(Map.of("x", x), output).get(output);
        SafetensorsFile.write(Path.of(args[3]), Map.of("logits", logits), TensorDtype.F32, Map.of());
    }
}
