package io.peft4j.runtime.internal;

import java.util.List;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;
import org.nd4j.linalg.api.ops.impl.reduce.MmulBp;

/**
 * Rewrites a SameDiff gradient graph so that matrix products compute only the operand gradients
 * that training uses.
 *
 * <p>SameDiff differentiates {@code y = op(a) · op(b)} into one {@code matmul_bp} op that always
 * computes both {@code dL/da} and {@code dL/db}. When {@code b} is a frozen weight, or {@code a} is an
 * input or an activation with nothing trainable upstream (the one-hot tokens of an embedding), one of
 * the two is a GEMM as large as the forward one whose result nobody reads. This class replaces each
 * such {@code matmul_bp} by a single {@code matmul} that computes the used gradient into the same
 * variable: {@code dA = g · op(b)ᵀ} or {@code dB = op(a)ᵀ · g}, transposed back where the operand was
 * used transposed. Shapes: any ranks {@code matmul} accepts; products with {@code transposeResult}
 * are left alone.
 *
 * <p>The rewrite is done on the gradient function ({@link GradientGraph}), which SameDiff builds as a
 * copy of the forward graph: changing the forward ops' classes does not reach it. After pruning,
 * asking SameDiff for the gradient of an activation whose gradient nothing needed (via
 * {@code calculateGradients}) fails; converting variables to constants, or back, makes SameDiff
 * rebuild a complete gradient function.
 */
public final class MatMulGradientPruner {

    private MatMulGradientPruner() {
    }

    /**
     * Builds {@code sameDiff}'s gradient function if it has none yet, then rewrites its
     * {@code matmul_bp} ops that have one unused output; returns how many were rewritten. Idempotent.
     * Call it after freezing and before training: SameDiff reuses the gradient function it finds.
     */
    public static int prune(SameDiff sameDiff) {
        GradientGraph gradients = GradientGraph.of(sameDiff);
        int rewritten = 0;
        for (SameDiffOp op : gradients.ops()) {
            if (op.getOp().getClass() == MmulBp.class && rewrite(gradients, op)) {
                rewritten++;
            }
        }
        return rewritten;
    }

    private static boolean rewrite(GradientGraph gradients, SameDiffOp op) {
        List<String> inputs = op.getInputsToOp();
        List<String> outputs = op.getOutputsOfOp();
        long[] flags = ((MmulBp) op.getOp()).iArgs();
        if (inputs.size() != 3 || outputs.size() != 2 || flag(flags, 2)) {
            return false;
        }
        boolean firstUsed = gradients.isUsed(outputs.get(0));
        boolean secondUsed = gradients.isUsed(outputs.get(1));
        if (firstUsed == secondUsed) {
            return false;
        }
        boolean transposeA = flag(flags, 0);
        boolean transposeB = flag(flags, 1);
        String a = inputs.get(0);
        String b = inputs.get(1);
        String g = inputs.get(2);
        List<String> newInputs;
        boolean[] newTranspose;
        if (firstUsed) {
            // dA = g · op(b)ᵀ, or (for a used transposed) op(b) · gᵀ
            newInputs = transposeA ? List.of(b, g) : List.of(g, b);
            newTranspose = transposeA ? new boolean[] {transposeB, true} : new boolean[] {false, !transposeB};
        } else {
            // dB = op(a)ᵀ · g, or (for b used transposed) gᵀ · op(a)
            newInputs = transposeB ? List.of(g, a) : List.of(a, g);
            newTranspose = transposeB ? new boolean[] {true, transposeA} : new boolean[] {!transposeA, false};
        }
        Mmul product = new Mmul();
        product.addIArgument(newTranspose[0] ? 1 : 0, newTranspose[1] ? 1 : 0, 0);
        product.addTArgument(1.0, 0.0);
        product.configureFromArguments();
        gradients.replace(op, product, newInputs, outputs.get(firstUsed ? 0 : 1), outputs.get(firstUsed ? 1 : 0));
        return true;
    }

    private static boolean flag(long[] flags, int index) {
        return flags.length > index && flags[index] != 0;
    }
}
