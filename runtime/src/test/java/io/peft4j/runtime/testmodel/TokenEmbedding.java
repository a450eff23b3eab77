package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.Weight;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/** Token ids {@code [batch, T]} (INT32) to {@code [batch, T, d]} through the table {@code [vocabulary, d]}; woven by hand. */
public final class TokenEmbedding {
    @Weight
    final SDVariable table;
    private final int vocabulary;
    private final int width;

    public TokenEmbedding(SameDiff sd, String name, int vocabulary, int width, DataType dtype, Random random) {
        this.table = sd.var(name + ".table", Nd4j.randn(random, new long[] {vocabulary, width}).castTo(dtype));
        this.vocabulary = vocabulary;
        this.width = width;
    }

    public SDVariable forward(SDVariable ids) {
        SameDiff sd = ids.getSameDiff();
        SDVariable rows = sd.oneHot(null, ids, vocabulary, -1, 1.0, 0.0, table.dataType()).reshape(-1, vocabulary).mmul(table);
        SDVariable shape = sd.concat(0, ids.shape(), sd.constant(Nd4j.createFromArray((long) width)));
        return (SDVariable) ForwardDispatcher.afterForward(this, ids, sd.reshape(rows, shape));
    }

    /** Eager: token ids {@code [batch, T]} to their rows {@code [batch, T, d]}. */
    public INDArray forward(INDArray ids) {
        INDArray rows = table.getArr().get(NDArrayIndex.indices(ids.reshape(-1).toLongVector()), NDArrayIndex.all());
        return (INDArray) ForwardDispatcher.afterForward(this, ids, rows.reshape(ids.size(0), ids.size(1), width));
    }
}
