package io.peft4j.spark;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.testmodel.ClassifierModel;
import java.io.IOException;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.apache.spark.TaskContext;
import org.apache.spark.sql.Row;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The runtime's test classifier ({@code x [batch, 6] → 3 classes}, LoRA on encoder and hidden, the head
 * trained) as a Spark job: rows {@code features: array<float>(6), label: int}. The base is the model built
 * with seed 1, or read from a safetensors file.
 */
final class ClassifierJob implements TrainingJob<ClassifierModel>, ScoringJob<ClassifierModel> {

    static final List<String> BASE_VARIABLES = List.of("encoder.weight", "encoder.bias", "hidden.weight", "hidden.bias",
            "classifier.weight", "classifier.bias");

    private final String basePath;
    private final int failAtBatchCall;
    private transient int batchCalls;

    /** A job whose base is generated (seed 1) or read from {@code basePath}; {@code failAtBatchCall} > 0 makes partition 1 of the first stage attempt fail there. */
    ClassifierJob(String basePath, int failAtBatchCall) {
        this.basePath = basePath;
        this.failAtBatchCall = failAtBatchCall;
    }

    static Map<String, INDArray> generatedBase() {
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        Map<String, INDArray> weights = new LinkedHashMap<>();
        BASE_VARIABLES.forEach(name -> weights.put(name, model.sd.getVariable(name).getArr().dup()));
        return weights;
    }

    @Override
    public String baseName() {
        return basePath == null ? "classifier-seed-1" : basePath;
    }

    @Override
    public Map<String, INDArray> loadBase() throws IOException {
        if (basePath == null) {
            return generatedBase();
        }
        if (!java.nio.file.Files.isReadable(Path.of(basePath))) {
            throw new IOException("no readable file at " + basePath);
        }
        return SafetensorsFile.read(Path.of(basePath));
    }

    @Override
    public ClassifierModel createModel(Map<String, INDArray> base) {
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 99);
        base.forEach((name, value) -> model.sd.getVariable(name).getArr().assign(value));
        return model;
    }

    @Override
    public PeftModel attach(ClassifierModel model) {
        return PeftModel.builder(model).only(LoRA.class).alsoTrain("classifier").seed(7).attach();
    }

    @Override
    public void buildLoss(ClassifierModel model) {
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, ClassifierModel.IN);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, ClassifierModel.CLASSES);
        sd.setLossVariables(sd.loss.softmaxCrossEntropy("loss", y, model.forward(x), null));
    }

    @Override
    public String buildOutput(ClassifierModel model) {
        return model.forward(model.sd.placeHolder("x", DataType.FLOAT, -1, ClassifierModel.IN)).name();
    }

    @Override
    public List<String> columns() {
        return List.of("features", "label");
    }

    @Override
    public List<String> featureColumns() {
        return List.of("features");
    }

    @Override
    public Map<String, INDArray> batch(List<Row> rows) {
        batchCalls++;
        TaskContext task = TaskContext.get();
        if (failAtBatchCall > 0 && batchCalls == failAtBatchCall && task != null && task.stageAttemptNumber() == 0 && task.partitionId() == 1) {
            throw new IllegalStateException("injected failure at batch call " + batchCalls);
        }
        INDArray x = features(rows).get("x");
        INDArray y = Nd4j.zeros(DataType.FLOAT, rows.size(), ClassifierModel.CLASSES);
        for (int i = 0; i < rows.size(); i++) {
            y.putScalar(i, rows.get(i).getInt(1), 1); // rows hold columns() in order: features, label
        }
        return Map.of("x", x, "y", y);
    }

    @Override
    public Map<String, INDArray> features(List<Row> rows) {
        INDArray x = Nd4j.zeros(DataType.FLOAT, rows.size(), ClassifierModel.IN);
        for (int i = 0; i < rows.size(); i++) {
            List<Float> values = rows.get(i).getList(0);
            for (int j = 0; j < ClassifierModel.IN; j++) {
                x.putScalar(i, j, values.get(j));
            }
        }
        return Map.of("x", x);
    }
}
