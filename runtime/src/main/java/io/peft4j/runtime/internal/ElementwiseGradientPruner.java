package io.peft4j.runtime.internal;

import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.MulOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.AddBpOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.MulBpOp;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.SubBpOp;
import org.nd4j.linalg.api.ops.impl.transforms.same.Identity;
import org.nd4j.linalg.api.shape.Shape;

/**
 * Rewrites a SameDiff gradient graph so that broadcast sums, differences and products compute only
 * the operand gradient that training uses.
 *
 * <p>SameDiff differentiates {@code z = x + y}, {@code x − y} and {@code x ⊙ y} into one
 * {@code add_bp}, {@code subtract_bp} or {@code multiply_bp} op that always computes both
 * {@code dL/dx} and {@code dL/dy}. For a frozen bias {@code [d]} or layer-norm scale {@code [d]}
 * added to or multiplied with activations {@code [batch, sequence, d]}, {@code dL/dy} is a sum of
 * {@code g} (or {@code g ⊙ x}) over every position, a strided reduction that costs more than the
 * forward op, and nothing reads it. When the operand whose gradient is used has the output's shape,
 * its gradient needs no reduction: {@code g} for a sum or for the minuend, {@code g ⊙ y} (or
 * {@code g ⊙ x}) for a product. This class replaces each such op by an {@code identity} or a
 * {@code multiply}; a subtrahend's gradient ({@code −g}) and ops whose used operand was broadcast
 * are left alone.
 *
 * <p>The graph does not record activation shapes, so the caller gives one batch (features and
 * labels by placeholder name) and the shapes come from one forward pass over it. The rewrite assumes
 * that later batches broadcast the same way, which holds unless an activation axis that meets a
 * parameter's axis is sometimes 1 and sometimes the parameter's size. If the forward pass fails (a
 * placeholder the batch does not feed), nothing is rewritten.
 */
public final class ElementwiseGradientPruner {
    private ElementwiseGradientPruner() {
    }

    /**
     * Rewrites the {@code add_bp}, {@code subtract_bp} and {@code multiply_bp} ops of
     * {@code sameDiff}'s gradient function (built first if missing) that have one unused output and
     * whose used operand has the output's shape in a forward pass over {@code batch} (placeholder name
     * to array); returns how many were rewritten. Idempotent; {@code batch} is not asked for when there
     * is nothing to rewrite.
     */
    public static int prune(SameDiff sameDiff, Supplier<Map<String, INDArray>> batch) {
        GradientGraph gradients = GradientGraph.of(sameDiff);
        Map<SameDiffOp, Integer> candidates = new LinkedHashMap<>();
        for (SameDiffOp op : gradients.ops()) {
            int used = usedOutput(gradients, op);
            if (used >= 0) {
                candidates.put(op, used);
            }
        }
        if (candidates.isEmpty()) {
            return 0;
        }
        Map<String, long[]> shapes = ActivationShapes.ofOperands(sameDiff, candidates.keySet(), batch.get());
        int rewritten = 0;
        for (Map.Entry<SameDiffOp, Integer> candidate : candidates.entrySet()) {
            if (rewrite(gradients, candidate.getKey(), candidate.getValue(), shapes)) {
                rewritten++;
            }
        }
        return rewritten;
    }

    /** The index (0 for x, 1 for y) of the one output that is used, or −1 when the op is not a candidate. */
    private static int usedOutput(GradientGraph gradients, SameDiffOp op) {
        Class<?> type = op.getOp().getClass();
        if (type != AddBpOp.class && type != SubBpOp.class && type != MulBpOp.class) {
            return -1;
        }
        List<String> outputs = op.getOutputsOfOp();
        if (op.getInputsToOp().size() != 3 || outputs.size() != 2) {
            return -1;
        }
        boolean firstUsed = gradients.isUsed(outputs.get(0));
        boolean secondUsed = gradients.isUsed(outputs.get(1));
        if (firstUsed == secondUsed || (type == SubBpOp.class && secondUsed)) {
            return -1;
        }
        return firstUsed ? 0 : 1;
    }

    private static boolean rewrite(GradientGraph gradients, SameDiffOp op, int used, Map<String, long[]> shapes) {
        List<String> inputs = op.getInputsToOp();
        String x = inputs.get(0);
        String y = inputs.get(1);
        String g = inputs.get(2);
        long[] xShape = shapes.get(x);
        long[] yShape = shapes.get(y);
        if (xShape == null || yShape == null) {
            return false;
        }
        long[] outputShape = Shape.broadcastOutputShape(xShape, yShape);
        if (!Arrays.equals(used == 0 ? xShape : yShape, outputShape)) {
            return false;
        }
        DifferentialFunction replacement;
        List<String> replacementInputs;
        if (op.getOp().getClass() == MulBpOp.class) {
            replacement = new MulOp();
            replacementInputs = List.of(g, used == 0 ? y : x);
        } else {
            replacement = new Identity();
            replacementInputs = List.of(g);
        }
        List<String> outputs = op.getOutputsOfOp();
        gradients.replace(op, replacement, replacementInputs, outputs.get(used), outputs.get(1 - used));
        return true;
    }
}
