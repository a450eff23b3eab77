package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.PrefixTuning;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/** {@link SequenceModel} whose prefixes come from Li and Liang's projection MLP (hidden width 5). */
public final class ProjectedSequenceModel {
    // Declared first: the walker names a shared object by the first path that reaches it.
    @PrefixTuning(virtualTokens = 2, projection = true, projectionHidden = 5)
    final SequenceModel.Attention attention;
    public final SequenceModel inner;

    public ProjectedSequenceModel(DataType dtype, long seed) {
        this.inner = new SequenceModel(dtype, seed);
        this.attention = inner.attention;
    }

    public SDVariable forward(SDVariable tokens, SDVariable queryMask, SDVariable keyMask) {
        return inner.run(inner.embedding, attention, inner.head, tokens, queryMask, keyMask);
    }

    public INDArray forward(INDArray tokens, INDArray queryMask, INDArray keyMask) {
        return inner.runEagerly(inner.embedding, attention, inner.head, tokens, queryMask, keyMask);
    }
}
