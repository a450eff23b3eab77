package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;

/**
 * A matrix multiply {@code y = op(a) · op(b)} one of whose operands is frozen (a SameDiff constant),
 * whose backward pass computes the gradient of the other operand only.
 *
 * <p>SameDiff differentiates {@code mmul} into one {@code matmul_bp} op that always computes both
 * operand gradients; for a frozen weight that is a GEMM as large as the forward one, thrown away.
 * {@link #replaceIn} swaps such ops for this subclass before the gradient graph is built. The forward
 * computation is unchanged (same op, same arguments); only {@link #doDiff} differs. Shapes: any ranks
 * {@code mmul} accepts; {@code transposeResult} falls back to SameDiff's own gradient.
 */
public final class FrozenOperandMatMul extends Mmul {
    private boolean frozenFirst;

    /** For SameDiff's reflection only; use {@link #replaceIn}. */
    public FrozenOperandMatMul() {
    }

    /**
     * Replaces every plain {@code mmul} of {@code sameDiff} that multiplies a constant by a
     * non-constant; returns how many were replaced. Idempotent. Call it before the first training step
     * (SameDiff builds its gradient graph once).
     */
    public static int replaceIn(SameDiff sameDiff) {
        int replaced = 0;
        for (SameDiffOp op : new ArrayList<>(sameDiff.getOps().values())) {
            if (op.getOp().getClass() != Mmul.class) {
                continue;
            }
            List<String> inputs = op.getInputsToOp();
            boolean firstFrozen = isConstant(sameDiff, inputs.get(0));
            boolean secondFrozen = isConstant(sameDiff, inputs.get(1));
            if (firstFrozen != secondFrozen) {
                op.setOp(replacing((Mmul) op.getOp(), firstFrozen));
                replaced++;
            }
        }
        return replaced;
    }

    private static boolean isConstant(SameDiff sameDiff, String name) {
        return sameDiff.getVariable(name).getVariableType() == VariableType.CONSTANT;
    }

    private static FrozenOperandMatMul replacing(Mmul original, boolean frozenFirst) {
        FrozenOperandMatMul op = new FrozenOperandMatMul();
        op.setSameDiff(original.getSameDiff());
        op.setOwnName(original.getOwnName());
        op.frozenFirst = frozenFirst;
        for (long argument : original.iArgs()) {
            op.addIArgument(argument);
        }
        for (double argument : original.tArgs()) {
            op.addTArgument(argument);
        }
        return op;
    }

    private boolean flag(int index) {
        long[] flags = iArgs();
        return flags.length > index && flags[index] != 0;
    }

    /**
     * With {@code A = op(a)}, {@code B = op(b)} and {@code g = dL/dy}: {@code dA = g·Bᵀ} and
     * {@code dB = Aᵀ·g}, transposed back where the operand was used transposed. The frozen operand
     * gets no gradient ({@code null}, which SameDiff skips).
     */
    @Override
    public List<SDVariable> doDiff(List<SDVariable> gradients) {
        boolean transposeA = flag(0);
        boolean transposeB = flag(1);
        if (flag(2)) {
            return super.doDiff(gradients);
        }
        SameDiff sd = getSameDiff();
        SDVariable g = gradients.get(0);
        SDVariable a = arg(0);
        SDVariable b = arg(1);
        if (frozenFirst) {
            SDVariable gradientOfB = transposeB ? sd.mmul(g, a, true, transposeA, false) : sd.mmul(a, g, !transposeA, false, false);
            return Arrays.asList(null, gradientOfB);
        }
        SDVariable gradientOfA = transposeA ? sd.mmul(b, g, transposeB, true, false) : sd.mmul(g, b, false, !transposeB, false);
        return Arrays.asList(gradientOfA, null);
    }
}
