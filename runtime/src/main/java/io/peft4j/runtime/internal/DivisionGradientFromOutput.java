package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.function.Supplier;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.DivOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.DivBpOp;
import org.nd4j.linalg.api.shape.Shape;

/**
 * Computes the gradients of a broadcast division in a gradient function from the quotient the forward
 * part already has.
 *
 * <p>SameDiff differentiates {@code q = x / y} into one {@code divide_bp(x, y, g)} op. Where {@code y}
 * is broadcast (a LayerNorm's standard deviation {@code [batch, T, 1]} dividing {@code [batch, T, d]}),
 * libnd4j forms both gradients from full-size temporaries before it reduces {@code y}'s: on
 * {@code [16, 64, 256]} about 12 ms per call in a standalone harness against 1.5 ms for the ops below,
 * and 1 ms inside a LoRA step of the sample transformer, one of its costliest ops per call. With
 * {@code q} at hand the gradients are
 * {@code dx = g / y} and {@code dy = −Σ (dx ⊙ q)} over the axes where {@code y} was broadcast (since
 * {@code g x / y² = (g / y)(x / y)}): a division, a product, a sum and a negation (the sum along a
 * long last axis as a product, {@link SumAsProduct}). {@code dx} is
 * {@code divide_bp}'s bit for bit; {@code dy} agrees to rounding (a few units in the last place).
 *
 * <p>Shapes: {@code x} has the quotient's shape and {@code y} its rank, with some axes 1; they come
 * from one forward pass over the first batch ({@link ActivationShapes}), so later batches must
 * broadcast the same way (the same assumption as {@link ElementwiseGradientPruner}'s). Left alone: a
 * division without its forward quotient in the graph, a broadcast {@code x}, a {@code y} of lower rank,
 * and a division whose gradient is itself a trainable variable's (training reads that variable by
 * name).
 */
final class DivisionGradientFromOutput {

    private DivisionGradientFromOutput() {
    }

    /**
     * Rewrites every {@code divide_bp} of {@code gradients} that matches a forward division, with shapes
     * from {@code forward} (the graph the gradient function was built from) run over {@code batch}, which
     * is asked for only when there is a candidate; returns how many were rewritten.
     */
    static int rewrite(GradientGraph gradients, GraphWiring wiring, SameDiff forward, Supplier<Map<String, INDArray>> batch) {
        Map<SameDiffOp, String> quotients = new LinkedHashMap<>();
        Set<String> required = gradients.requiredOutputs();
        for (SameDiffOp op : gradients.ops()) {
            if (op.getOp().getClass() != DivBpOp.class || op.getInputsToOp().size() != 3 || op.getOutputsOfOp().size() != 2
                    || op.getOutputsOfOp().stream().anyMatch(required::contains)
                    || op.getOutputsOfOp().stream().allMatch(output -> wiring.readers(output).isEmpty())) {
                continue;
            }
            String quotient = forwardQuotient(op.getInputsToOp().get(0), op.getInputsToOp().get(1), wiring);
            if (quotient != null) {
                quotients.put(op, quotient);
            }
        }
        if (quotients.isEmpty()) {
            return 0;
        }
        Map<String, long[]> shapes = ActivationShapes.ofOperands(forward, quotients.keySet(), batch.get());
        int rewritten = 0;
        for (Map.Entry<SameDiffOp, String> candidate : quotients.entrySet()) {
            SameDiffOp op = candidate.getKey();
            int[] axes = broadcastAxes(shapes.get(op.getInputsToOp().get(0)), shapes.get(op.getInputsToOp().get(1)));
            if (axes != null) {
                rewrite(gradients.sameDiff(), wiring, op, candidate.getValue(), axes, shapes.get(op.getInputsToOp().get(0)));
                rewritten++;
            }
        }
        return rewritten;
    }

    private static void rewrite(SameDiff graph, GraphWiring wiring, SameDiffOp op, String quotient, int[] axes, long[] shape) {
        SDVariable y = graph.getVariable(op.getInputsToOp().get(1));
        SDVariable g = graph.getVariable(op.getInputsToOp().get(2));
        SDVariable dx = g.div(y);
        SDVariable weighted = dx.mul(graph.getVariable(quotient));
        boolean lastAxis = axes.length == 1 && axes[0] == shape.length - 1 && shape[axes[0]] >= SumAsProduct.SHORTEST_LAST_AXIS;
        SDVariable sum = axes.length == 0 ? weighted
                : lastAxis ? SumAsProduct.lastAxis(graph, weighted, shape.length, shape[axes[0]], false, true) : graph.sum(weighted, true, axes);
        SDVariable dy = sum.neg();
        wiring.moveReaders(op.getOutputsOfOp().get(0), dx.name());
        wiring.moveReaders(op.getOutputsOfOp().get(1), dy.name());
    }

    /**
     * The axes along which {@code y} was broadcast to {@code x}'s shape (each positive: see
     * {@link SoftmaxGradientFromOutput} on negative axes), or {@code null} when the shapes are unknown,
     * {@code x} was itself broadcast or {@code y} has a different rank.
     */
    private static int[] broadcastAxes(long[] x, long[] y) {
        if (x == null || y == null || x.length != y.length || x.length == 0 || !Shape.areShapesBroadcastable(x, y)
                || !Arrays.equals(x, Shape.broadcastOutputShape(x, y))) {
            return null;
        }
        List<Integer> axes = new ArrayList<>();
        for (int axis = 0; axis < x.length; axis++) {
            if (y[axis] != x[axis]) {
                axes.add(axis);
            }
        }
        return axes.stream().mapToInt(Integer::intValue).toArray();
    }

    /** The output of a {@code divide} of {@code x} by {@code y} in the forward part, or {@code null}. */
    private static String forwardQuotient(String x, String y, GraphWiring wiring) {
        for (SameDiffOp reader : wiring.readers(x)) {
            if (reader.getOp().getClass() == DivOp.class && reader.getInputsToOp().equals(List.of(x, y))
                    && reader.getOutputsOfOp().size() == 1) {
                return reader.getOutputsOfOp().get(0);
            }
        }
        return null;
    }
}
