package io.peft4j.samples.minilm;

import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Grows a mask at the front of its last axis to a length known only when the graph runs: prompt
 * tuning puts {@code n} virtual tokens before the sequence, prefix tuning {@code n} positions before
 * the keys. Pads nothing when the lengths already agree.
 */
final class MaskPadding {

    private MaskPadding() {
    }

    /**
     * {@code mask [..., T]} padded with {@code value} in front to {@code [..., length]};
     * {@code length} is a scalar INT64 graph value.
     */
    static SDVariable leftPad(SDVariable mask, int rank, SDVariable length, double value) {
        SameDiff sd = mask.getSameDiff();
        SDVariable missing = length.sub(sd.sizeAt(mask, rank - 1)).reshape(1, 1);
        SDVariable none = sd.constant(Nd4j.zeros(org.nd4j.linalg.api.buffer.DataType.INT64, rank - 1, 2));
        SDVariable last = sd.concat(1, missing, sd.constant(Nd4j.zeros(org.nd4j.linalg.api.buffer.DataType.INT64, 1, 1)));
        return sd.nn.pad(mask, sd.concat(0, none, last), value);
    }
}
