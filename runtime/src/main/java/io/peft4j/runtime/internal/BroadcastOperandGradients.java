package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.Map;
import java.util.function.Supplier;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.AddBpOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.MulBpOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.SubBpOp;
import org.nd4j.linalg.api.shape.Shape;

/**
 * Computes the gradients of a broadcast sum, difference or product in a gradient function with
 * plain element-wise ops and one sum, instead of libnd4j's {@code add_bp}, {@code subtract_bp} and
 * {@code multiply_bp}.
 *
 * <p>For {@code z = x ∘ b} with {@code x} of {@code z}'s shape and {@code b} broadcast (a bias
 * {@code [d]} or a LayerNorm gain added to or multiplied with activations {@code [batch, T, d]}),
 * {@code x}'s gradient is {@code g}, {@code −g} or {@code g ⊙ b}, and {@code b}'s is {@code g} (or
 * {@code g ⊙ x}) summed over the axes along which {@code b} was broadcast, negated for a subtrahend,
 * in {@code b}'s shape. libnd4j's backward ops take a slow general path for that reduction: in full
 * fine-tuning of the sample transformer, 2.7 ms per {@code multiply_bp} and 0.9 ms per {@code add_bp}
 * on {@code [16, 64, 256]}, 81 ms of a 340 ms step (BENCHMARKS.md). {@link ElementwiseGradientPruner}
 * already handles those whose broadcast operand's gradient nothing reads (frozen parameters); this
 * rewrite handles the rest. Values agree to rounding (the sum's order may differ).
 *
 * <p>Shapes come from one forward pass over the first batch ({@link ActivationShapes}); later batches
 * must broadcast the same way, as for {@link ElementwiseGradientPruner}. An {@code add_bp} whose
 * operands have one shape (a residual connection, LoRA's branch added to its layer's output) copies
 * {@code g} into both gradients: their readers read {@code g} instead, and the op is no longer run.
 * Left alone: {@code subtract_bp} and {@code multiply_bp} of operands of one shape (libnd4j's path is
 * fast there), ops whose operands both broadcast, and any gradient that is a trainable variable's
 * where it would become {@code g} itself (its updater changes it in place). A trainable broadcast
 * operand (the usual case: a bias read once) takes the new sum as its gradient.
 */
final class BroadcastOperandGradients {

    private BroadcastOperandGradients() {
    }

    /**
     * What {@link #rewrite} did.
     *
     * @param summed    ops whose broadcast operand's gradient is now a sum of element-wise ops
     * @param passedOn  {@code add_bp} ops of operands of one shape whose gradients' readers now read {@code g}
     */
    record Rewrites(int summed, int passedOn) {
    }

    /**
     * Rewrites the broadcast {@code add_bp}, {@code subtract_bp} and {@code multiply_bp} ops of
     * {@code gradients} and passes on the gradients of {@code add_bp} ops of one shape, with shapes
     * from {@code forward} run over {@code batch} (asked for only when there is a candidate).
     */
    static Rewrites rewrite(GradientGraph gradients, GraphWiring wiring, SameDiff forward, Supplier<Map<String, INDArray>> batch) {
        List<SameDiffOp> candidates = new ArrayList<>();
        for (SameDiffOp op : gradients.ops()) {
            Class<?> type = op.getOp().getClass();
            if ((type == AddBpOp.class || type == SubBpOp.class || type == MulBpOp.class) && op.getInputsToOp().size() == 3
                    && op.getOutputsOfOp().size() == 2 && op.getOutputsOfOp().stream().anyMatch(gradients::isUsed)) {
                candidates.add(op);
            }
        }
        if (candidates.isEmpty()) {
            return new Rewrites(0, 0);
        }
        Map<String, long[]> shapes = ActivationShapes.ofOperands(forward, candidates, batch.get());
        Set<String> required = gradients.requiredOutputs();
        int rewritten = 0;
        int passedOn = 0;
        for (SameDiffOp op : candidates) {
            long[] x = shapes.get(op.getInputsToOp().get(0));
            long[] y = shapes.get(op.getInputsToOp().get(1));
            if (x == null || y == null || !Shape.areShapesBroadcastable(x, y)) {
                continue;
            }
            if (Arrays.equals(x, y)) {
                passedOn += op.getOp().getClass() == AddBpOp.class && passOn(gradients, wiring, op, required) ? 1 : 0;
                continue;
            }
            long[] z = Shape.broadcastOutputShape(x, y);
            int broadcast = Arrays.equals(x, z) && !Arrays.equals(y, z) ? 1 : Arrays.equals(y, z) && !Arrays.equals(x, z) ? 0 : -1;
            if (broadcast < 0 || required.contains(op.getOutputsOfOp().get(1 - broadcast))) {
                continue;
            }
            rewrite(gradients, wiring, forward, op, broadcast, broadcastAxes(z, broadcast == 0 ? x : y), broadcast == 0 ? x : y, z);
            rewritten++;
        }
        return new Rewrites(rewritten, passedOn);
    }

    /** The readers of {@code add_bp}'s gradients, other than trainable variables', read its incoming gradient; true if any moved. */
    private static boolean passOn(GradientGraph gradients, GraphWiring wiring, SameDiffOp op, Set<String> required) {
        String g = op.getInputsToOp().get(2);
        int moved = 0;
        for (String gradient : op.getOutputsOfOp()) {
            if (gradients.isUsed(gradient) && !required.contains(gradient)) {
                moved += wiring.moveReaders(gradient, g);
            }
        }
        return moved > 0;
    }

    private static void rewrite(GradientGraph gradients, GraphWiring wiring, SameDiff forward, SameDiffOp op, int broadcast, int[] axes,
                                long[] broadcastShape, long[] z) {
        SameDiff graph = gradients.sameDiff();
        int full = 1 - broadcast;
        Class<?> type = op.getOp().getClass();
        SDVariable g = graph.getVariable(op.getInputsToOp().get(2));
        SDVariable fullOperand = graph.getVariable(op.getInputsToOp().get(full));
        SDVariable broadcastOperand = graph.getVariable(op.getInputsToOp().get(broadcast));
        String fullGradient = op.getOutputsOfOp().get(full);
        String broadcastGradient = op.getOutputsOfOp().get(broadcast);
        boolean negated = type == SubBpOp.class;

        if (gradients.isUsed(fullGradient)) {
            SDVariable replacement = type == MulBpOp.class ? g.mul(broadcastOperand) : negated && full == 1 ? g.neg() : g;
            wiring.moveReaders(fullGradient, replacement.name());
        }
        if (gradients.isUsed(broadcastGradient)) {
            SDVariable terms = type == MulBpOp.class ? g.mul(fullOperand) : g;
            SDVariable sum = sum(graph, terms, axes, z);
            if (!Arrays.equals(resultShape(axes, z), broadcastShape)) {
                sum = graph.reshape(sum, broadcastShape);
            }
            if (negated && broadcast == 1) {
                sum = sum.neg();
            }
            wiring.moveReaders(broadcastGradient, sum.name());
            GradientGraph.repointGradient(graph, broadcastGradient, sum);
            GradientGraph.repointGradient(forward, broadcastGradient, sum);
        }
    }

    /**
     * {@code terms [z]} summed over {@code axes}: over leading axes or a long last axis as a product
     * ({@link SumAsProduct}), shaped as {@link #resultShape} says; otherwise libnd4j's sum, keeping the axes.
     */
    private static SDVariable sum(SameDiff graph, SDVariable terms, int[] axes, long[] z) {
        if (isLeadingBlock(axes, z.length)) {
            return SumAsProduct.leadingAxes(graph, terms, z.length, axes.length);
        }
        if (axes.length == 1 && axes[0] == z.length - 1 && z[z.length - 1] >= SumAsProduct.SHORTEST_LAST_AXIS) {
            return SumAsProduct.lastAxis(graph, terms, z.length, z[z.length - 1], false, true);
        }
        return graph.sum(terms, true, axes);
    }

    /** The shape {@link #sum} gives: {@code z} without its leading summed axes, or with the summed axes as 1. */
    private static long[] resultShape(int[] axes, long[] z) {
        if (isLeadingBlock(axes, z.length)) {
            return Arrays.copyOfRange(z, axes.length, z.length);
        }
        long[] shape = z.clone();
        for (int axis : axes) {
            shape[axis] = 1;
        }
        return shape;
    }

    /** {@code axes} are 0, 1, ..., k − 1 for some k below {@code rank}. */
    private static boolean isLeadingBlock(int[] axes, int rank) {
        for (int i = 0; i < axes.length; i++) {
            if (axes[i] != i) {
                return false;
            }
        }
        return axes.length > 0 && axes.length < rank;
    }

    /** The axes of {@code z} along which an operand of shape {@code operand} (aligned to the right) was broadcast. */
    private static int[] broadcastAxes(long[] z, long[] operand) {
        List<Integer> axes = new ArrayList<>();
        int lead = z.length - operand.length;
        for (int axis = 0; axis < z.length; axis++) {
            long size = axis < lead ? 1 : operand[axis - lead];
            if (size == 1 && z[axis] != 1) {
                axes.add(axis);
            }
        }
        return axes.stream().mapToInt(Integer::intValue).toArray();
    }
}
