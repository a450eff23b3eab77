package io.peft4j.samples.spam;

import io.peft4j.runtime.RecordedInference;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;

/**
 * A spam classifier's graph: placeholders token ids, token types and mask {@code [batch, T]} (INT32)
 * and one-hot labels {@code [batch, 2]}, logits {@code [batch, 2]} and the softmax cross-entropy loss;
 * and its evaluation on test batches.
 */
public final class SpamGraph {
    public static final String IDS = "input_ids";
    public static final String TYPES = "token_type_ids";
    public static final String MASK = "attention_mask";
    public static final String LABELS = "labels";

    private final SameDiff sd;
    private final SDVariable logits;
    private final RecordedInference classify;

    /** Accuracy, F1 of the spam class, seconds for the whole test set, and every batch's logits {@code [batch, 2]}. */
    public record Evaluation(double accuracy, double f1, double seconds, List<INDArray> logits) {
    }

    /** Builds the graph with whatever is attached to {@code model} now. */
    public SpamGraph(SpamClassifier model) {
        this.sd = model.sameDiff();
        SDVariable ids = sd.placeHolder(IDS, DataType.INT32, -1, -1);
        SDVariable types = sd.placeHolder(TYPES, DataType.INT32, -1, -1);
        SDVariable mask = sd.placeHolder(MASK, DataType.INT32, -1, -1);
        SDVariable labels = sd.placeHolder(LABELS, DataType.FLOAT, -1, 2);
        this.logits = model.forward(ids, types, mask);
        sd.setLossVariables(sd.loss.softmaxCrossEntropy("loss", labels, logits, null));
        this.classify = RecordedInference.of(sd, logits.name());
    }

    /** The logits {@code [batch, 2]} of one batch; batches of a length seen before replay a recorded forward pass. */
    public INDArray logits(MultiDataSet batch) {
        return classify.output(Map.of(IDS, batch.getFeatures(0), TYPES, batch.getFeatures(1), MASK, batch.getFeatures(2)))
                .get(logits.name());
    }

    public Evaluation evaluate(SpamBatches test) {
        long truePositive = 0;
        long falsePositive = 0;
        long falseNegative = 0;
        long correct = 0;
        long total = 0;
        List<INDArray> all = new ArrayList<>();
        long start = System.nanoTime();
        for (MultiDataSet batch : test.batches()) {
            INDArray batchLogits = logits(batch);
            all.add(batchLogits);
            INDArray predicted = batchLogits.argMax(1);
            INDArray actual = batch.getLabels(0).argMax(1);
            for (int row = 0; row < predicted.length(); row++) {
                boolean spamPredicted = predicted.getInt(row) == 1;
                boolean spam = actual.getInt(row) == 1;
                correct += spamPredicted == spam ? 1 : 0;
                truePositive += spamPredicted && spam ? 1 : 0;
                falsePositive += spamPredicted && !spam ? 1 : 0;
                falseNegative += !spamPredicted && spam ? 1 : 0;
                total++;
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        double f1 = truePositive == 0 ? 0 : 2.0 * truePositive / (2.0 * truePositive + falsePositive + falseNegative);
        return new Evaluation((double) correct / total, f1, seconds, all);
    }
}
