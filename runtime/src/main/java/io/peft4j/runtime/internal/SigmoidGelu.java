package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ops.impl.transforms.strict.GELU;
import org.nd4j.linalg.api.ops.impl.transforms.strict.GELUDerivative;

/**
 * Computes ND4J's {@code gelu} and its derivative in a gradient function from one sigmoid.
 *
 * <p>ND4J's {@code gelu} is the sigmoid form {@code y = x · σ(t)} with {@code t = 1.702 x}, and its
 * derivative op {@code _geluderivative} evaluates {@code σ(t) · (1 + t · (1 − σ(t)))} from {@code x}
 * again. On the CPU each is a transcendental kernel over the whole activation (on {@code [16, 64, 1024]}
 * about 2.5 and 4.4 ms, against 0.2 to 0.3 ms for a product or a scalar op), so the backward pass pays
 * for a second sigmoid. This rewrite computes {@code σ(t)} once, in the forward part, and builds both
 * from it with products and scalar ops: one transcendental kernel instead of two. Values agree with
 * the ops' to rounding (fp32: the forward bit for bit, the derivative within 1e-6).
 *
 * <p>Shapes: any; the new ops have {@code x}'s shape. The ops it replaces stay in the graph unread
 * ({@link GraphWiring}). Only {@code gelu} itself is matched, not {@code precise_gelu} or a GELU written
 * with {@code erf}.
 */
final class SigmoidGelu {
    /** The slope of the sigmoid in ND4J's {@code gelu}. */
    static final double SIGMOID_SLOPE = 1.702;

    private SigmoidGelu() {
    }

    /**
     * Rewrites every {@code gelu} of {@code graph} that something reads, except fp32 ones when
     * {@code keepFloat} (replayed steps compute those in peft4j's kernels, one pass each); returns how many.
     */
    static int rewrite(SameDiff graph, GraphWiring wiring, boolean keepFloat) {
        int rewritten = 0;
        for (SameDiffOp op : List.copyOf(graph.getOps().values())) {
            if (op.getOp().getClass() != GELU.class || op.getInputsToOp().size() != 1 || op.getOutputsOfOp().size() != 1) {
                continue;
            }
            String input = op.getInputsToOp().get(0);
            if (keepFloat && graph.getVariable(input).dataType() == DataType.FLOAT) {
                continue;
            }
            String output = op.getOutputsOfOp().get(0);
            List<SameDiffOp> derivatives = derivativesOf(input, wiring);
            if (wiring.readers(output).isEmpty() && derivatives.isEmpty()) {
                continue;
            }
            SDVariable x = graph.getVariable(input);
            SDVariable scaled = x.mul(SIGMOID_SLOPE);
            SDVariable sigmoid = graph.nn.sigmoid(scaled);
            wiring.moveReaders(output, x.mul(sigmoid).name());
            if (!derivatives.isEmpty()) {
                SDVariable slope = sigmoid.mul(scaled.mul(sigmoid.rsub(1.0)).add(1.0));
                for (SameDiffOp derivative : derivatives) {
                    wiring.moveReaders(derivative.getOutputsOfOp().get(0), slope.name());
                }
            }
            rewritten++;
        }
        return rewritten;
    }

    private static List<SameDiffOp> derivativesOf(String input, GraphWiring wiring) {
        List<SameDiffOp> derivatives = new ArrayList<>();
        for (SameDiffOp reader : wiring.readers(input)) {
            if (reader.getOp().getClass() == GELUDerivative.class && reader.getInputsToOp().size() == 1
                    && reader.getOutputsOfOp().size() == 1) {
                derivatives.add(reader);
            }
        }
        return derivatives;
    }
}
