package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.ReduceOp;
import org.nd4j.linalg.api.ops.ScalarOp;

/**
 * Finds, among a gradient function's recorded calls, the backward pass of attention written out op
 * by op ({@link ScaledDotProductAttention}), so that {@link RecordedStep} can run it as one pass of
 * peft4j's kernels ({@link ReplayKernels#attentionGradient}).
 *
 * <p>The calls recognised, as SameDiff differentiates {@code softmax(QKᵀ ∘ scale + mask) V} once
 * {@link SoftmaxGradientFromOutput} has rewritten the softmax's gradient: {@code matmul_bp(P, V, dO)}
 * into {@code dP} and {@code dV}; {@code multiply(dP, P)}; its {@code reduce_sum} over the last axis,
 * keeping it; {@code subtract(dP, sum)}; {@code multiply} of that by {@code P}; optionally an
 * {@code add_bp} of the mask whose gradient for the mask nothing reads; optionally the scaling's
 * {@code div_scalar} or {@code mul_scalar}; {@code matmul_bp(Q, K, dS)} with {@code K} transposed, into
 * {@code dQ} and {@code dK}, or, where nothing needs {@code dK} and SameDiff's gradient was pruned
 * ({@link MatMulGradientPruner}), {@code matmul(dS, K)} into {@code dQ} alone. Other ops of the step run between them (the values' gradient flows on
 * while the scores' is formed), so the group runs at its first call, where everything it reads is
 * ready, and {@code dQ} and {@code dK} are written there, earlier than their calls would have: their
 * buffers are reserved from that call on ({@link FusedGroup#writtenAtAnchor()}). A group is fused only
 * when nothing outside it reads what it computes on the way.
 */
public final class AttentionGradient {
    /**
     * A fused pass's operands as the replay passes them: the forward pass's {@code query [.., m, d]}
     * ({@code null} when {@code dK} is not wanted), {@code keys [.., T, d]}, {@code values [.., T, e]}
     * and {@code probabilities [.., m, T]}, the output's gradient {@code [.., m, e]}, and the scaling of
     * the scores ({@code null} when none).
     */
    public record Operands(INDArray query, INDArray keys, INDArray values, INDArray probabilities, INDArray outputGradient,
                           ScaledDotProductAttention.Scale scale) {
    }

    /**
     * One fused group, run at its first call, {@code anchor}, the product by the values' gradient;
     * {@code keyGradient} is -1 when the scores' last call is {@code matmul(dS, K)}.
     */
    record Fusion(int anchor, Set<Integer> members, int scoresGradient, ScaledDotProductAttention.Scale scale, int[] inputs,
                  int queryGradient, int keyGradient, int valueGradient) implements FusedGroup {
        @Override
        public Runnable kernel(ReplayKernels kernels, FusedGroup.StepArrays arrays) {
            boolean keys = keyGradient >= 0;
            Operands operands = new Operands(keys ? arrays.input(scoresGradient, 0) : null, arrays.input(scoresGradient, 1),
                    arrays.input(anchor, 1), arrays.input(anchor, 0), arrays.input(anchor, 2), scale);
            return kernels.attentionGradient(operands, arrays.slot(queryGradient), keys ? arrays.slot(keyGradient) : null,
                    arrays.slot(valueGradient));
        }

        @Override
        public int[] writtenAtAnchor() {
            return keyGradient >= 0 ? new int[] {queryGradient, keyGradient} : new int[] {queryGradient};
        }
    }

    private AttentionGradient() {
    }

    /** Every attention gradient written out among {@code calls}. */
    static List<Fusion> find(FusedGroup.Calls calls) {
        List<Fusion> found = new ArrayList<>();
        for (int call = 0; call < calls.size(); call++) {
            if ("matmul_bp".equals(calls.op(call).opName())) {
                Fusion fusion = fromValuesProduct(calls, call);
                if (fusion != null) {
                    found.add(fusion);
                }
            }
        }
        return found;
    }

    private static Fusion fromValuesProduct(FusedGroup.Calls calls, int anchor) {
        int[] inputs = calls.inputs(anchor);
        long[] iArgs = calls.integerArguments(anchor);
        if (inputs.length != 3 || calls.outputs(anchor).length != 2 || !plain(calls, anchor) || flag(iArgs, 0) || flag(iArgs, 1)
                || flag(iArgs, 2) || inputs[0] < 0) {
            return null;
        }
        INDArray probabilities = calls.recordedInput(anchor, 0);
        if (probabilities.dataType() != DataType.FLOAT || probabilities.rank() < 3) {
            return null;
        }
        int p = inputs[0];
        int dp = calls.outputs(anchor)[0];
        Set<Integer> members = new TreeSet<>(List.of(anchor));
        List<Integer> intermediates = new ArrayList<>(List.of(dp));
        int weighting = pairReader(calls, dp, "multiply", dp, p, true);
        int summing = weighting < 0 ? -1 : onlyReader(calls, calls.outputs(weighting)[0], "reduce_sum");
        if (summing < 0 || !sumsLastAxisKeepingIt(calls, summing)) {
            return null;
        }
        int centring = pairReader(calls, dp, "subtract", dp, calls.outputs(summing)[0], false);
        int gradientOfMasked = centring < 0 ? -1 : pairReader(calls, calls.outputs(centring)[0], "multiply", calls.outputs(centring)[0], p, true);
        if (gradientOfMasked < 0) {
            return null;
        }
        members.addAll(List.of(weighting, summing, centring, gradientOfMasked));
        intermediates.addAll(List.of(calls.outputs(weighting)[0], calls.outputs(summing)[0], calls.outputs(centring)[0]));
        int current = calls.outputs(gradientOfMasked)[0];
        int masking = onlyReader(calls, current, "add_bp");
        if (masking >= 0) {
            int[] maskInputs = calls.inputs(masking);
            int[] maskOutputs = calls.outputs(masking);
            if (maskInputs.length != 3 || maskInputs[2] != current || maskOutputs.length != 2 || isRead(calls, maskOutputs[1])) {
                return null;
            }
            members.add(masking);
            intermediates.add(current);
            current = maskOutputs[0];
        }
        ScaledDotProductAttention.Scale scale = null;
        int scaling = onlyReader(calls, current, "div_scalar");
        if (scaling < 0) {
            scaling = onlyReader(calls, current, "mul_scalar");
        }
        if (scaling >= 0) {
            DifferentialFunction op = calls.op(scaling);
            if (!(op instanceof ScalarOp scalarOp) || calls.outputs(scaling).length != 1 || scalarOp.dimensions() != null
                    || scalarOp.scalar() == null || scalarOp.scalar().length() != 1) {
                return null;
            }
            scale = new ScaledDotProductAttention.Scale(op.opName().equals("div_scalar"), scalarOp.scalar().castTo(DataType.FLOAT).getFloat(0));
            members.add(scaling);
            intermediates.add(current);
            current = calls.outputs(scaling)[0];
        }
        int scoresGradient = onlyReader(calls, current, "matmul_bp");
        boolean keysWanted = scoresGradient >= 0;
        if (!keysWanted) {
            scoresGradient = onlyReader(calls, current, "matmul");
        }
        if (scoresGradient < 0) {
            return null;
        }
        int[] scoresInputs = calls.inputs(scoresGradient);
        long[] scoresArguments = calls.integerArguments(scoresGradient);
        boolean form = keysWanted
                ? scoresInputs.length == 3 && scoresInputs[2] == current && calls.outputs(scoresGradient).length == 2
                        && !flag(scoresArguments, 0) && flag(scoresArguments, 1) && !flag(scoresArguments, 2)
                : scoresInputs.length == 2 && scoresInputs[0] == current && scoresInputs[1] != current
                        && calls.outputs(scoresGradient).length == 1 && !flag(scoresArguments, 0) && !flag(scoresArguments, 1)
                        && !flag(scoresArguments, 2);
        if (!form || !plain(calls, scoresGradient)) {
            return null;
        }
        members.add(scoresGradient);
        intermediates.add(current);
        if (Collections.min(members) != anchor) {
            return null;
        }
        for (int slot : intermediates) {
            for (int reader : calls.readers(slot)) {
                if (!members.contains(reader)) {
                    return null;
                }
            }
            if (calls.readAfterwards(slot)) {
                return null;
            }
        }
        int[] read = keysWanted ? new int[] {inputs[0], inputs[1], inputs[2], scoresInputs[0], scoresInputs[1]}
                : new int[] {inputs[0], inputs[1], inputs[2], scoresInputs[1]};
        return new Fusion(anchor, members, scoresGradient, scale, Arrays.stream(read).filter(slot -> slot >= 0).toArray(),
                calls.outputs(scoresGradient)[0], keysWanted ? calls.outputs(scoresGradient)[1] : -1, calls.outputs(anchor)[1]);
    }

    /** The call named {@code opName} reading {@code slot} with inputs {@code first, second} (in either order when {@code commutes}), or -1. */
    private static int pairReader(FusedGroup.Calls calls, int slot, String opName, int first, int second, boolean commutes) {
        for (int reader : calls.readers(slot)) {
            int[] inputs = calls.inputs(reader);
            if (!calls.op(reader).opName().equals(opName) || inputs.length != 2 || calls.outputs(reader).length != 1) {
                continue;
            }
            if ((inputs[0] == first && inputs[1] == second) || (commutes && inputs[0] == second && inputs[1] == first)) {
                return reader;
            }
        }
        return -1;
    }

    /** The one call reading {@code slot}, if it is named {@code opName}, else -1. */
    private static int onlyReader(FusedGroup.Calls calls, int slot, String opName) {
        List<Integer> readers = calls.readers(slot);
        return readers.size() == 1 && calls.op(readers.get(0)).opName().equals(opName) ? readers.get(0) : -1;
    }

    private static boolean isRead(FusedGroup.Calls calls, int slot) {
        return !calls.readers(slot).isEmpty() || calls.readAfterwards(slot);
    }

    /** A legacy {@code reduce_sum} of one input over its last axis, keeping it. */
    private static boolean sumsLastAxisKeepingIt(FusedGroup.Calls calls, int call) {
        if (!(calls.op(call) instanceof ReduceOp reduce) || !reduce.isKeepDims() || calls.inputs(call).length != 1
                || calls.outputs(call).length != 1 || calls.integerArguments(call).length > 0) {
            return false;
        }
        INDArray dimensions = reduce.dimensions();
        int rank = calls.recordedInput(call, 0).rank();
        return dimensions != null && dimensions.length() == 1 && (dimensions.getLong(0) == rank - 1 || dimensions.getLong(0) == -1);
    }

    private static boolean plain(FusedGroup.Calls calls, int call) {
        double[] tArgs = calls.floatArguments(call);
        return (tArgs.length == 0 || (tArgs.length == 2 && tArgs[0] == 1.0 && tArgs[1] == 0.0)) && calls.integerArguments(call).length <= 3;
    }

    private static boolean flag(long[] iArgs, int index) {
        return iArgs.length > index && iArgs[index] != 0;
    }
}
