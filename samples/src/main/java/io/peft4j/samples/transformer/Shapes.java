package io.peft4j.samples.transformer;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Dynamic shapes for graphs whose batch size and sequence length are known only when they run
 * (a prompt or a prefix makes sequences longer than the input).
 */
public final class Shapes {

    private Shapes() {
    }

    /** The shape of {@code x} with its last dimension replaced by {@code size}s: {@code [..., a] → [..., size...]}. */
    public static SDVariable replaceLast(SDVariable x, long... sizes) {
        SameDiff sd = x.getSameDiff();
        SDVariable leading = sd.stridedSlice(x.shape(), new long[] {0}, new long[] {-1}, new long[] {1});
        return sd.concat(0, leading, sd.constant(Nd4j.createFromArray(sizes)));
    }
}
