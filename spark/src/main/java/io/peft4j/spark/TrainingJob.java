package io.peft4j.spark;

import io.peft4j.runtime.PeftModel;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What {@link SparkAdapterTraining} trains: the model, its adapters, its loss and how rows become a batch.
 * Every executor calls these in the same order, so every worker builds the same graph.
 *
 * @param <M> the model's class
 */
public interface TrainingJob<M> extends ModelSource<M> {

    /** Attaches the adapters to train, e.g. {@code PeftModel.builder(model).only(LoRA.class).alsoTrain("classifier").attach()}. */
    PeftModel attach(M model);

    /**
     * Builds the forward pass and the loss in the model's graph (after {@link #attach}) and registers the
     * loss with {@code sameDiff.setLossVariables(...)}. The loss must be a mean over the batch's rows, so
     * that the mean of the workers' gradients is the gradient of the global batch.
     */
    void buildLoss(M model);

    /** The columns {@link #batch} reads; the data must have them. */
    List<String> columns();

    /**
     * The placeholders of one batch (features and labels, by placeholder name) from its rows, in order. Each
     * row holds the {@link #columns()} in the order listed, e.g. {@code row.getList(0)} for the first.
     */
    Map<String, INDArray> batch(List<Row> rows);
}
