package io.peft4j.samples.transformer;

import io.peft4j.annotations.Weight;
import io.peft4j.runtime.EagerSession;
import io.peft4j.runtime.RowProduct;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.impl.transforms.custom.XwPlusB;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A fully connected layer {@code y = x · W + b} over the last axis.
 *
 * <p>Shapes: input {@code [..., in]}, weight {@code [in, out]}, bias {@code [out]}, output
 * {@code [..., out]}. Variables are named {@code <name>.weight} and {@code <name>.bias}. Not
 * annotated itself: the fields that hold a Linear decide whether it is adapted.
 */
public final class Linear {
    @Weight
    final SDVariable weight;
    final SDVariable bias;
    private final int in;
    private final int out;

    /** Xavier-uniform weight, zero bias. */
    public Linear(SameDiff sd, String name, int in, int out, Random random) {
        double bound = Math.sqrt(6.0 / (in + out));
        this.weight = sd.var(name + ".weight", Nd4j.rand(random, in, out).castTo(DataType.FLOAT).muli(2 * bound).subi(bound));
        this.bias = sd.var(name + ".bias", Nd4j.zeros(DataType.FLOAT, out));
        this.in = in;
        this.out = out;
    }

    public SDVariable forward(SDVariable x) {
        SDVariable rows = x.reshape(-1, in).mmul(weight);
        // A square layer's output has its input's shape: two ops to restore it instead of four.
        if (in == out) {
            return x.getSameDiff().reshape(rows, x.shape()).add(bias);
        }
        return x.getSameDiff().reshape(rows, Shapes.replaceLast(x, out)).add(bias);
    }

    /**
     * Eager (inference without a graph): {@code [..., in] → [..., out]} with the weights' current values.
     * Several rows by ND4J's {@code xw_plus_b} (one op where the graph has two: eager decoding is
     * op-bound); one row (a decoding step) by {@link RowProduct}, BLAS's gemv. In an
     * {@link EagerSession} the ops reuse their native contexts and outputs.
     */
    public INDArray forward(INDArray x) {
        INDArray rows = x.rank() == 2 ? x : x.reshape(-1, in);
        INDArray y;
        if (rows.size(0) == 1) {
            y = RowProduct.timesPlus(this, "x W + b", rows, weight.getArr(), bias.getArr());
        } else {
            INDArray output = EagerSession.outputFor(this, "x W + b", rows.dataType(), rows.size(0), out);
            y = EagerSession.call(this, "xw_plus_b", () -> new XwPlusB(new INDArray[] {rows, weight.getArr(), bias.getArr()}, output), output,
                    rows, weight.getArr(), bias.getArr());
        }
        if (x.rank() == 2) {
            return y;
        }
        long[] shape = x.shape().clone();
        shape[shape.length - 1] = out;
        return y.reshape(shape);
    }
}
