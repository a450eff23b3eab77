package io.peft4j.runtime.internal;

import java.util.OptionalLong;
import java.util.Set;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;

/**
 * The width (last dimension) of a graph value while the graph is being built.
 *
 * <p>SameDiff in ND4J 1.0.0-M2.1 does not infer static shapes through placeholders with unknown
 * batch size, so a layer output's width is read off the ops that produced it: a matrix product
 * takes its width from the weight's columns, and element-wise ops (bias adds, activations, layer
 * normalisation, residual sums) keep the width of their inputs.
 */
public final class OutputWidth {

    private static final int MAX_DEPTH = 12;
    private static final Set<String> WIDTH_PRESERVING = Set.of("add", "sub", "subtract", "mul", "multiply", "div",
            "divide", "realdiv", "add_scalar", "sub_scalar", "mul_scalar", "div_scalar", "rsub", "rdiv", "biasadd",
            "tanh", "relu", "gelu", "sigmoid", "swish", "elu", "leakyrelu", "softmax", "layer_norm", "identity",
            "square", "sqrt", "neg", "abs", "dropout", "dropout_inverted");

    private OutputWidth() {
    }

    public static OptionalLong of(SDVariable value) {
        return of(value, MAX_DEPTH);
    }

    private static OptionalLong of(SDVariable value, int depth) {
        long[] shape = staticShape(value);
        if (shape != null && shape.length > 0 && shape[shape.length - 1] > 0) {
            return OptionalLong.of(shape[shape.length - 1]);
        }
        if (value.getVariableType() != VariableType.ARRAY || depth == 0) {
            return OptionalLong.empty();
        }
        DifferentialFunction op = value.getSameDiff().getVariableOutputOp(value.name());
        if (op == null) {
            return OptionalLong.empty();
        }
        SDVariable[] inputs = op.args();
        if (op instanceof Mmul product && inputs.length == 2) {
            // Mmul carries its transpose flags as integer arguments: [transposeA, transposeB, transposeResult].
            long[] flags = product.iArgs();
            boolean transposeB = flags.length > 1 && flags[1] != 0;
            boolean transposeResult = flags.length > 2 && flags[2] != 0;
            long[] right = staticShape(inputs[1]);
            if (transposeResult || right == null || right.length != 2) {
                return OptionalLong.empty();
            }
            return OptionalLong.of(transposeB ? right[0] : right[1]);
        }
        if (!WIDTH_PRESERVING.contains(op.opName())) {
            return OptionalLong.empty();
        }
        for (SDVariable input : inputs) {
            OptionalLong width = of(input, depth - 1);
            if (width.isPresent() && width.getAsLong() > 1) {
                return width;
            }
        }
        return OptionalLong.empty();
    }

    private static long[] staticShape(SDVariable value) {
        if (value.getVariableType() == VariableType.VARIABLE || value.getVariableType() == VariableType.CONSTANT) {
            INDArray array = value.getArr();
            return array == null ? null : array.shape();
        }
        try {
            return value.getShape();
        } catch (RuntimeException unknownUntilExecution) {
            return null;
        }
    }
}
