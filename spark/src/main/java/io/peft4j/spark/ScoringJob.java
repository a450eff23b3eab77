package io.peft4j.spark;

import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * What {@link SparkScoring} runs over a data set: the model (with an adapter merged in by the scorer),
 * its output and how rows become its input.
 *
 * @param <M> the model's class
 */
public interface ScoringJob<M> extends ModelSource<M> {

    /** Builds the inference graph (called after the adapter is merged) and returns its output variable's name. */
    String buildOutput(M model);

    /** The columns {@link #features} reads; the data must have them. */
    List<String> featureColumns();

    /**
     * The placeholders of one batch of rows, by placeholder name; the output's first axis is the row. Each row
     * holds the {@link #featureColumns()} in the order listed.
     */
    Map<String, INDArray> features(List<Row> rows);
}
