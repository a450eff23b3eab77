package io.peft4j.spark;

import java.io.IOException;
import java.io.Serializable;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * How a Spark executor builds the model: the base weights, read once per JVM, and a fresh model around
 * them per task. Implementations are serialized to the executors with the job, so they hold only what
 * describes the model (a path, sizes), never weights or graphs.
 *
 * @param <M> the model's class (the user's own annotated model)
 */
public interface ModelSource<M> extends Serializable {

    /** Names the base: models built for the same name share the weights {@link #loadBase()} read, once per JVM. */
    String baseName();

    /**
     * Reads the frozen base weights, by the name {@link #createModel} expects (e.g. with
     * {@code SafetensorsFile.read(path)} from a path every executor can read). Called once per JVM and
     * base name; the arrays are shared by every task in that JVM, so {@link #createModel} copies them.
     */
    Map<String, INDArray> loadBase() throws IOException;

    /** A new model whose weights are copies of {@code base}. */
    M createModel(Map<String, INDArray> base);
}
