package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.ReduceOp;
import org.nd4j.linalg.api.ops.ScalarOp;

/**
 * Finds, among a recording's op calls, a LayerNorm written out op by op over the last axis,
 * {@code y = (x − mean(x)) / √(mean((x − mean(x))²) + ε) · gain + bias}, so that {@link RecordedStep}
 * can run its nine ops as one pass of peft4j's kernels, or two ({@link Stage}; {@link ReplayKernels#writtenOutLayerNorm}).
 *
 * <p>Models that must match PyTorch's LayerNorm write it this way (ND4J's {@code layer_norm} has no
 * ε, and its backward op was slower than the composed gradient here, BENCHMARKS.md); each op is a
 * pass over {@code [batch, T, d]}, five of them in libnd4j at that size. The ops recognised: two
 * {@code reduce_mean} over the last axis keeping it, {@code subtract} of the mean, {@code multiply}
 * of the centred values by themselves, {@code add_scalar} of ε, {@code sqrt}, {@code divide} by the
 * deviation, {@code multiply} by a gain and {@code add} of a bias of the last axis's length (either
 * operand order). A group is fused only when nothing outside it reads what it computes before its
 * last op, and only the values read elsewhere (by the gradient ops) are written.
 */
public final class WrittenOutLayerNorm {
    /** The values of the group that a step may read elsewhere. */
    public enum Part { MEAN, CENTRED, SQUARED, VARIANCE, SHIFTED, DEVIATION, NORMALISED, SCALED, OUTPUT }

    /**
     * What a fused pass computes: the whole LayerNorm, or, where something outside the group reads
     * the shifted variance before the group ends (SameDiff's derivative of {@code sqrt},
     * {@code pow(shifted, -0.5)}, sits in the forward pass of a gradient), its first five ops up to the
     * shifted variance and, as a second pass, the last four from the centred values.
     */
    public enum Stage { ALL, STATISTICS, NORMALISATION }

    /**
     * One pass to run at its last call, {@code anchor}.
     *
     * @param input   the input's slot: {@code x}, or the centred values for {@link Stage#NORMALISATION}
     * @param shifted the shifted variance's slot for {@link Stage#NORMALISATION}, else -1
     * @param epsilon the ε the variance is shifted by, as the recorded op adds it (fp32)
     * @param gain    the call and input index of the gain (not for {@link Stage#STATISTICS})
     * @param bias    the call and input index of the bias (not for {@link Stage#STATISTICS})
     * @param parts   the values that calls after the group read, by role: those it writes
     */
    record Fusion(int anchor, Set<Integer> members, Stage stage, int input, int shifted, float epsilon, int[] gain, int[] bias,
                  Map<Part, Integer> parts) implements FusedGroup {
        @Override
        public int[] inputs() {
            return shifted >= 0 ? new int[] {input, shifted} : new int[] {input};
        }

        @Override
        public Runnable kernel(ReplayKernels kernels, FusedGroup.StepArrays arrays) {
            Map<Part, INDArray> written = new EnumMap<>(Part.class);
            parts.forEach((part, slot) -> written.put(part, arrays.slot(slot)));
            return kernels.writtenOutLayerNorm(stage, arrays.slot(input), shifted >= 0 ? arrays.slot(shifted) : null,
                    gain == null ? null : arrays.input(gain[0], gain[1]), bias == null ? null : arrays.input(bias[0], bias[1]), epsilon, written);
        }
    }

    private WrittenOutLayerNorm() {
    }

    /** Every written-out LayerNorm among {@code calls}. */
    static List<Fusion> find(FusedGroup.Calls calls) {
        List<Fusion> found = new ArrayList<>();
        for (int call = 0; call < calls.size(); call++) {
            if ("reduce_mean".equals(calls.op(call).opName())) {
                found.addAll(fromMean(calls, call));
            }
        }
        return found;
    }

    private static List<Fusion> fromMean(FusedGroup.Calls calls, int mean) {
        int[] meanInputs = calls.inputs(mean);
        if (meanInputs.length != 1 || meanInputs[0] < 0 || !overLastAxis(calls, mean)) {
            return List.of();
        }
        int x = meanInputs[0];
        INDArray input = calls.recordedInput(mean, 0);
        if (input.dataType() != DataType.FLOAT || input.rank() < 2) {
            return List.of();
        }
        long width = input.size(input.rank() - 1);
        int meanSlot = calls.outputs(mean)[0];
        int centring = reader(calls, meanSlot, "subtract", x, meanSlot);
        int centred = centring < 0 ? -1 : calls.outputs(centring)[0];
        int squaring = centred < 0 ? -1 : reader(calls, centred, "multiply", centred, centred);
        int variance = squaring < 0 ? -1 : unaryReader(calls, calls.outputs(squaring)[0], "reduce_mean");
        if (variance < 0 || !overLastAxis(calls, variance)) {
            return List.of();
        }
        int shifting = unaryReader(calls, calls.outputs(variance)[0], "add_scalar");
        Float epsilon = shifting < 0 ? null : scalar(calls, shifting);
        int root = epsilon == null ? -1 : unaryReader(calls, calls.outputs(shifting)[0], "sqrt");
        int deviation = root < 0 ? -1 : calls.outputs(root)[0];
        int dividing = deviation < 0 ? -1 : reader(calls, deviation, "divide", centred, deviation);
        int normalised = dividing < 0 ? -1 : calls.outputs(dividing)[0];
        int scaling = normalised < 0 ? -1 : operandOfWidth(calls, normalised, "multiply", width);
        int shiftingByBias = scaling < 0 ? -1 : operandOfWidth(calls, calls.outputs(scaling)[0], "add", width);
        if (shiftingByBias < 0) {
            return List.of();
        }
        Set<Integer> members = new TreeSet<>(List.of(mean, centring, squaring, variance, shifting, root, dividing, scaling, shiftingByBias));
        if (members.size() != 9 || Collections.max(members) != shiftingByBias) {
            return List.of();
        }
        Map<Part, Integer> produced = new EnumMap<>(Part.class);
        produced.put(Part.MEAN, meanSlot);
        produced.put(Part.CENTRED, centred);
        produced.put(Part.SQUARED, calls.outputs(squaring)[0]);
        produced.put(Part.VARIANCE, calls.outputs(variance)[0]);
        produced.put(Part.SHIFTED, calls.outputs(shifting)[0]);
        Map<Part, Integer> producedLater = new EnumMap<>(Part.class);
        producedLater.put(Part.DEVIATION, deviation);
        producedLater.put(Part.NORMALISED, normalised);
        producedLater.put(Part.SCALED, calls.outputs(scaling)[0]);
        producedLater.put(Part.OUTPUT, calls.outputs(shiftingByBias)[0]);
        int[] gain = otherInput(calls, scaling, normalised);
        int[] bias = otherInput(calls, shiftingByBias, calls.outputs(scaling)[0]);
        Map<Part, Integer> all = new EnumMap<>(produced);
        all.putAll(producedLater);
        Map<Part, Integer> written = FusedGroup.written(calls, members, all, Part.class);
        if (written != null) {
            return List.of(new Fusion(shiftingByBias, members, Stage.ALL, x, -1, epsilon, gain, bias, written));
        }
        Set<Integer> statistics = new TreeSet<>(List.of(mean, centring, squaring, variance, shifting));
        Set<Integer> normalisation = new TreeSet<>(List.of(root, dividing, scaling, shiftingByBias));
        if (Collections.max(statistics) != shifting || Collections.min(normalisation) <= shifting) {
            return List.of();
        }
        Map<Part, Integer> writtenFirst = FusedGroup.written(calls, statistics, produced, Part.class);
        Map<Part, Integer> writtenSecond = FusedGroup.written(calls, normalisation, producedLater, Part.class);
        if (writtenFirst == null || writtenSecond == null) {
            return List.of();
        }
        int shifted = calls.outputs(shifting)[0];
        return List.of(new Fusion(shifting, statistics, Stage.STATISTICS, x, -1, epsilon, null, null, writtenFirst),
                new Fusion(shiftingByBias, normalisation, Stage.NORMALISATION, centred, shifted, epsilon, gain, bias, writtenSecond));
    }

    /** A legacy {@code reduce_mean} over the last axis of its input, keeping that axis. */
    private static boolean overLastAxis(FusedGroup.Calls calls, int call) {
        DifferentialFunction op = calls.op(call);
        if (!(op instanceof ReduceOp reduce) || !reduce.isKeepDims() || calls.outputs(call).length != 1) {
            return false;
        }
        INDArray dimensions = reduce.dimensions();
        int rank = calls.recordedInput(call, 0).rank();
        if (dimensions == null || dimensions.length() != 1) {
            return false;
        }
        long axis = dimensions.getLong(0);
        return axis == rank - 1 || axis == -1;
    }

    /** The call named {@code opName} that reads {@code slot} with exactly the inputs {@code first, second}, or -1. */
    private static int reader(FusedGroup.Calls calls, int slot, String opName, int first, int second) {
        for (int call : calls.readers(slot)) {
            int[] inputs = calls.inputs(call);
            if (calls.op(call).opName().equals(opName) && inputs.length == 2 && inputs[0] == first && inputs[1] == second
                    && calls.outputs(call).length == 1) {
                return call;
            }
        }
        return -1;
    }

    /**
     * The call named {@code opName} that reads only {@code slot}, into one output, or -1. Other
     * readers (gradient ops) may read {@code slot} too; {@link FusedGroup#written} makes sure they come
     * after the group.
     */
    private static int unaryReader(FusedGroup.Calls calls, int slot, String opName) {
        for (int call : calls.readers(slot)) {
            if (calls.op(call).opName().equals(opName) && calls.inputs(call).length == 1 && calls.outputs(call).length == 1) {
                return call;
            }
        }
        return -1;
    }

    /** The call named {@code opName} combining {@code slot} with a rank-1 fp32 operand of {@code width} elements, or -1. */
    private static int operandOfWidth(FusedGroup.Calls calls, int slot, String opName, long width) {
        for (int call : calls.readers(slot)) {
            int[] inputs = calls.inputs(call);
            if (!calls.op(call).opName().equals(opName) || inputs.length != 2 || calls.outputs(call).length != 1
                    || (inputs[0] == slot) == (inputs[1] == slot)) {
                continue;
            }
            INDArray other = calls.recordedInput(call, inputs[0] == slot ? 1 : 0);
            if (other.rank() == 1 && other.length() == width && other.dataType() == DataType.FLOAT) {
                return call;
            }
        }
        return -1;
    }

    /** The call and input index of {@code call}'s operand that is not {@code slot}. */
    private static int[] otherInput(FusedGroup.Calls calls, int call, int slot) {
        return new int[] {call, calls.inputs(call)[0] == slot ? 1 : 0};
    }

    /** The fp32 scalar of a one-input {@code add_scalar}, or null. */
    private static Float scalar(FusedGroup.Calls calls, int call) {
        DifferentialFunction op = calls.op(call);
        if (!(op instanceof ScalarOp scalarOp) || calls.inputs(call).length != 1 || scalarOp.dimensions() != null) {
            return null;
        }
        INDArray value = scalarOp.scalar();
        return value == null || value.length() != 1 ? null : value.castTo(DataType.FLOAT).getFloat(0);
    }
}
