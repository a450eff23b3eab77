package io.peft4j.samples.gpt;

import io.peft4j.samples.BatchIterator;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;

/**
 * The next-byte training graph of a {@link GptModel} over windows of {@code length} tokens:
 * placeholders {@code <name>.tokens [batch, length]} and {@code <name>.next [batch, length]} (INT32),
 * logits {@code [batch, length, vocab]} and the mean cross-entropy {@code <name>.loss} in nats per byte.
 * Build it after attaching PEFT, so the adapters are part of it.
 */
public final class LanguageModelGraph {
    private final SameDiff sd;
    private final SDVariable tokens;
    private final SDVariable next;
    private final SDVariable logits;
    private final SDVariable loss;
    private final int length;

    private LanguageModelGraph(GptModel model, String name, int length) {
        this.sd = model.sameDiff();
        this.length = length;
        this.tokens = sd.placeHolder(name + ".tokens", DataType.INT32, -1, length);
        this.next = sd.placeHolder(name + ".next", DataType.INT32, -1, length);
        this.logits = model.logits(tokens, length);
        SDVariable perToken = sd.loss.sparseSoftmaxCrossEntropy(logits.reshape(-1, model.config().vocabulary()), next.reshape(-1));
        this.loss = perToken.mean().rename(name + ".loss");
        sd.setLossVariables(loss);
    }

    public static LanguageModelGraph build(GptModel model, String name, int length) {
        return new LanguageModelGraph(model, name, length);
    }

    /** Adam at {@code learningRate}, the dataset's features and labels mapped to this graph's placeholders. */
    public TrainingConfig training(double learningRate) {
        return TrainingConfig.builder().updater(new Adam(learningRate)).dataSetFeatureMapping(tokens.name())
                .dataSetLabelMapping(next.name()).minimize(loss.name()).build();
    }

    /** Mean cross-entropy over {@code windows}, in bits per byte. */
    public double bitsPerByte(DataSet windows, int batchSize) {
        double sum = 0;
        long count = 0;
        BatchIterator batches = new BatchIterator(windows, batchSize);
        while (batches.hasNext()) {
            DataSet batch = batches.next();
            INDArray value = sd.output(Map.of(tokens.name(), batch.getFeatures(), next.name(), batch.getLabels()), loss.name())
                    .get(loss.name());
            long n = batch.getFeatures().length();
            sum += value.getDouble(0) * n;
            count += n;
        }
        return sum / count / Math.log(2);
    }

    /** Logits {@code [batch, length, vocab]} for {@code tokens [batch, length]}. */
    public INDArray logits(INDArray tokenIds) {
        return sd.output(Map.of(tokens.name(), tokenIds.castTo(DataType.INT32)), logits.name()).get(logits.name());
    }

    public int length() {
        return length;
    }

    public String lossName() {
        return loss.name();
    }
}
