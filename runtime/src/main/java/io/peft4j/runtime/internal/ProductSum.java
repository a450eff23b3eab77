package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import java.util.TreeSet;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.shape.Reshape;

/**
 * Finds, among a recording's op calls, a matrix product with a short side added to a value of its
 * shape, so that {@link RecordedStep} can run both as one pass ({@link ReplayKernels#productSum}):
 * LoRA's branch added to its layer's output, {@code y + (z · B)}, and in the gradient the branch's
 * share of its input's gradient added to the base layer's, {@code dx + dz · Aᵀ}.
 *
 * <p>The calls recognised: a {@code matmul} of two fp32 matrices without a transposed result, or a
 * {@code matmul_bp} whose first gradient is that product; its output (the first gradient) read only
 * by an optional C-order {@code reshape} and then by one {@code add} whose other operand has the
 * same shape; no other reader of the product or its reshape, before or after. A {@code matmul_bp}'s
 * second gradient (the factor's, {@code dA = xᵀ · dz}) is computed in the same pass, so no call
 * between the product and the sum may read it. The group runs at the sum; the sum is the product
 * rounded to fp32 plus the other operand, as the two calls compute it.
 */
public final class ProductSum {
    /** Longest short side of the products looked at (the kernels' {@code LOW_RANK}); longer ones stay in BLAS. */
    static final int SHORT_SIDE = 16;

    /**
     * One fused group, run at its sum ({@code anchor}).
     *
     * @param product       the {@code matmul} or {@code matmul_bp} call
     * @param addendInput   which of the sum's inputs is the other operand
     * @param otherGradient a {@code matmul_bp}'s second gradient's slot, -1 for a {@code matmul}
     */
    record Fusion(int anchor, Set<Integer> members, int product, int addendInput, int otherGradient, int[] inputs,
                  DifferentialFunction op, long[] integerArguments, double[] floatArguments, int inputCount, int output)
            implements FusedGroup {
        @Override
        public Runnable kernel(ReplayKernels kernels, FusedGroup.StepArrays arrays) {
            List<INDArray> operands = new ArrayList<>();
            for (int k = 0; k < inputCount; k++) {
                operands.add(arrays.input(product, k));
            }
            return kernels.productSum(op, operands, integerArguments, floatArguments, arrays.input(anchor, addendInput),
                    arrays.slot(output), otherGradient < 0 ? null : arrays.slot(otherGradient));
        }
    }

    private ProductSum() {
    }

    /** Every product added to a value among {@code calls}; where both operands of a sum are such products, the first. */
    static List<Fusion> find(FusedGroup.Calls calls) {
        List<Fusion> found = new ArrayList<>();
        Set<Integer> sums = new TreeSet<>();
        for (int call = 0; call < calls.size(); call++) {
            String name = calls.op(call).opName();
            if (name.equals("matmul") || name.equals("matmul_bp")) {
                Fusion fusion = fromProduct(calls, call, name.equals("matmul_bp"));
                if (fusion != null && sums.add(fusion.anchor())) {
                    found.add(fusion);
                }
            }
        }
        return found;
    }

    private static Fusion fromProduct(FusedGroup.Calls calls, int product, boolean gradient) {
        int[] inputs = calls.inputs(product);
        int[] outputs = calls.outputs(product);
        long[] iArgs = calls.integerArguments(product);
        if (inputs.length != (gradient ? 3 : 2) || outputs.length != (gradient ? 2 : 1) || iArgs.length > 3
                || (iArgs.length > 2 && iArgs[2] != 0) || !shortSided(calls, product, gradient)) {
            return null;
        }
        Set<Integer> members = new TreeSet<>(List.of(product));
        int current = outputs[0];
        int reader = onlyReader(calls, current);
        if (reader >= 0 && calls.op(reader).getClass() == Reshape.class && calls.inputs(reader)[0] == current
                && calls.outputs(reader).length == 1 && (calls.integerArguments(reader).length == 0 || calls.integerArguments(reader)[0] == -'c')) {
            members.add(reader);
            current = calls.outputs(reader)[0];
            reader = onlyReader(calls, current);
        }
        if (reader < 0 || !calls.op(reader).opName().equals("add") || calls.outputs(reader).length != 1) {
            return null;
        }
        int[] sumInputs = calls.inputs(reader);
        if (sumInputs.length != 2 || (sumInputs[0] == current) == (sumInputs[1] == current)) {
            return null;
        }
        int addendInput = sumInputs[0] == current ? 1 : 0;
        INDArray addend = calls.recordedInput(reader, addendInput);
        if (addend.dataType() != DataType.FLOAT || !Arrays.equals(addend.shape(), calls.recordedInput(reader, 1 - addendInput).shape())) {
            return null;
        }
        members.add(reader);
        int otherGradient = gradient ? outputs[1] : -1;
        if (gradient) {
            for (int later : calls.readers(otherGradient)) {
                if (later <= reader) {
                    return null;
                }
            }
        }
        List<Integer> read = new ArrayList<>();
        for (int slot : inputs) {
            read.add(slot);
        }
        read.add(sumInputs[addendInput]);
        int[] inputSlots = read.stream().mapToInt(Integer::intValue).filter(slot -> slot >= 0).toArray();
        return new Fusion(reader, members, product, addendInput, otherGradient, inputSlots, calls.op(product), iArgs,
                calls.floatArguments(product), inputs.length, calls.outputs(reader)[0]);
    }

    /** The one call that reads {@code slot}, when nothing else does (nor the step afterwards); else -1. */
    private static int onlyReader(FusedGroup.Calls calls, int slot) {
        List<Integer> readers = calls.readers(slot);
        return readers.size() == 1 && !calls.readAfterwards(slot) ? readers.get(0) : -1;
    }

    /** Whether the product's operands are fp32 matrices with a side of at most {@link #SHORT_SIDE}. */
    private static boolean shortSided(FusedGroup.Calls calls, int product, boolean gradient) {
        INDArray x = calls.recordedInput(product, 0);
        INDArray y = calls.recordedInput(product, 1);
        if (x.rank() != 2 || y.rank() != 2 || x.dataType() != DataType.FLOAT || y.dataType() != DataType.FLOAT
                || (gradient && calls.recordedInput(product, 2).dataType() != DataType.FLOAT)) {
            return false;
        }
        return Math.min(Math.min(x.size(0), x.size(1)), Math.min(y.size(0), y.size(1))) <= SHORT_SIDE;
    }
}
