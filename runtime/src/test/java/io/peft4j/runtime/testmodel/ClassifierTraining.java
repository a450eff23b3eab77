package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import java.util.LinkedHashMap;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A {@link ClassifierModel} with LoRA and a trained classifier head, its softmax cross-entropy loss over
 * placeholders {@code x [batch, 6]} and {@code y [batch, 3]}, and {@code rows} seeded examples with
 * cyclic labels: the same setup, built anew, for tests that compare two ways of training.
 */
public record ClassifierTraining(ClassifierModel model, PeftModel peft, DataSet data) {

    public static ClassifierTraining create(int rows) {
        ClassifierModel model = new ClassifierModel(DataType.FLOAT, 1);
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).alsoTrain("classifier").seed(3).attach();
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, ClassifierModel.IN);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, ClassifierModel.CLASSES);
        sd.setLossVariables(sd.loss.softmaxCrossEntropy("loss", y, model.forward(x), null));
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(11);
        INDArray features = Nd4j.rand(random, rows, ClassifierModel.IN).castTo(DataType.FLOAT);
        INDArray labels = Nd4j.zeros(DataType.FLOAT, rows, ClassifierModel.CLASSES);
        for (int row = 0; row < rows; row++) {
            labels.putScalar(row, row % ClassifierModel.CLASSES, 1);
        }
        return new ClassifierTraining(model, peft, new DataSet(features, labels));
    }

    /** Copies of the trainable variables' values, by name. */
    public Map<String, INDArray> trainable() {
        Map<String, INDArray> values = new LinkedHashMap<>();
        for (SDVariable variable : model.sd.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                values.put(variable.name(), variable.getArr().dup());
            }
        }
        return values;
    }
}
