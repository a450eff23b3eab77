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
import org.nd4j.linalg.api.ops.ScalarOp;

/**
 * Finds, among a recording's op calls, attention written out op by op,
 * {@code softmax(Q · Kᵀ ∘ scale + mask) · V}, so that {@link RecordedStep} can run it as one pass
 * of peft4j's kernels ({@link ReplayKernels#attention}) that never writes the intermediates no later
 * op reads.
 *
 * <p>The calls recognised: a {@code matmul} of two fp32 arrays of rank 3 or more (any transposition
 * of its operands, none of its result, no scaling arguments); optionally a {@code div_scalar} or
 * {@code mul_scalar} of the scores; optionally an {@code add} of a mask that broadcasts to the scores
 * (either operand order); a {@code softmax} over the last axis; a {@code matmul} of the
 * probabilities, untransposed, by the values. That is how the samples' transformer, MiniLM and GPT
 * write attention, and how most SameDiff models do. A group is fused only when nothing outside it
 * reads its intermediates before its last call; those read afterwards (a training step's softmax
 * gradient reads the probabilities) are written.
 */
public final class ScaledDotProductAttention {
    /** The intermediates a step may read elsewhere, each shaped as the scores {@code [.., m, T]}. */
    public enum Part { SCORES, SCALED, MASKED, PROBABILITIES }

    /**
     * The recorded scaling of the scores.
     *
     * @param divides whether the scores are divided by {@code value} ({@code div_scalar}) or multiplied by it
     * @param value   the constant, as the recorded op applies it (fp32)
     */
    public record Scale(boolean divides, float value) {
    }

    /**
     * A fused pass's operands as the replay passes them.
     *
     * @param query            {@code Q [.., m, d]}, or {@code [.., d, m]} when {@code queryTransposed}
     * @param keys             the second operand of the scores' product, {@code Kᵀ [.., d, T]}, or
     *                         {@code K [.., T, d]} when {@code keysTransposed}
     * @param values           {@code V [.., T, e]}, or {@code [.., e, T]} when {@code valuesTransposed}
     * @param mask             added to the scaled scores, broadcasting to {@code [.., m, T]}; {@code null} when none
     * @param scale            the scaling, {@code null} when none
     */
    public record Operands(INDArray query, boolean queryTransposed, INDArray keys, boolean keysTransposed, INDArray values,
                           boolean valuesTransposed, INDArray mask, Scale scale) {
    }

    /**
     * One fused group, run at its last call, the product by the values ({@code anchor}).
     *
     * @param scoring   the scores' {@code matmul} call
     * @param masking   the mask's {@code add} call, -1 when none
     * @param maskInput which of {@code masking}'s inputs is the mask
     * @param parts     the intermediates that calls after the group read, by role: those it writes
     */
    record Fusion(int anchor, Set<Integer> members, int scoring, boolean queryTransposed, boolean keysTransposed, boolean valuesTransposed,
                  int masking, int maskInput, Scale scale, Map<Part, Integer> parts, int output, int[] inputs) implements FusedGroup {
        @Override
        public Runnable kernel(ReplayKernels kernels, FusedGroup.StepArrays arrays) {
            Map<Part, INDArray> written = new EnumMap<>(Part.class);
            parts.forEach((part, slot) -> written.put(part, arrays.slot(slot)));
            Operands operands = new Operands(arrays.input(scoring, 0), queryTransposed, arrays.input(scoring, 1), keysTransposed,
                    arrays.input(anchor, 1), valuesTransposed, masking < 0 ? null : arrays.input(masking, maskInput), scale);
            return kernels.attention(operands, written, arrays.slot(output));
        }
    }

    private ScaledDotProductAttention() {
    }

    /** Every attention written out among {@code calls}. */
    static List<Fusion> find(FusedGroup.Calls calls) {
        List<Fusion> found = new ArrayList<>();
        for (int call = 0; call < calls.size(); call++) {
            if ("matmul".equals(calls.op(call).opName())) {
                Fusion fusion = fromScores(calls, call);
                if (fusion != null) {
                    found.add(fusion);
                }
            }
        }
        return found;
    }

    private static Fusion fromScores(FusedGroup.Calls calls, int scoring) {
        if (!isProduct(calls, scoring) || flag(calls.integerArguments(scoring), 2)) {
            return null;
        }
        INDArray query = calls.recordedInput(scoring, 0);
        INDArray keys = calls.recordedInput(scoring, 1);
        if (query.dataType() != DataType.FLOAT || keys.dataType() != DataType.FLOAT || query.rank() < 3 || keys.rank() != query.rank()) {
            return null;
        }
        Set<Integer> members = new TreeSet<>(List.of(scoring));
        Map<Part, Integer> produced = new EnumMap<>(Part.class);
        int current = calls.outputs(scoring)[0];
        produced.put(Part.SCORES, current);
        Scale scale = null;
        int scaling = scalingReader(calls, current);
        if (scaling >= 0) {
            ScalarOp op = (ScalarOp) calls.op(scaling);
            scale = new Scale(op.opName().equals("div_scalar"), op.scalar().castTo(DataType.FLOAT).getFloat(0));
            members.add(scaling);
            current = calls.outputs(scaling)[0];
            produced.put(Part.SCALED, current);
        }
        int masking = -1;
        int maskInput = -1;
        for (int reader : calls.readers(current)) {
            int[] inputs = calls.inputs(reader);
            if (calls.op(reader).opName().equals("add") && inputs.length == 2 && calls.outputs(reader).length == 1
                    && (inputs[0] == current) != (inputs[1] == current)) {
                int other = inputs[0] == current ? 1 : 0;
                INDArray scores = calls.recordedInput(reader, 1 - other);
                INDArray mask = calls.recordedInput(reader, other);
                if (mask.dataType() == DataType.FLOAT && broadcasts(mask.shape(), scores.shape())) {
                    masking = reader;
                    maskInput = other;
                    break;
                }
            }
        }
        if (masking >= 0) {
            members.add(masking);
            current = calls.outputs(masking)[0];
            produced.put(Part.MASKED, current);
        }
        int softmax = softmaxReader(calls, current, query.rank());
        if (softmax < 0) {
            return null;
        }
        members.add(softmax);
        int probabilities = calls.outputs(softmax)[0];
        produced.put(Part.PROBABILITIES, probabilities);
        int weighting = -1;
        for (int reader : calls.readers(probabilities)) {
            int[] inputs = calls.inputs(reader);
            long[] iArgs = calls.integerArguments(reader);
            if (calls.op(reader).opName().equals("matmul") && isProduct(calls, reader) && inputs[0] == probabilities
                    && inputs[1] != probabilities && !flag(iArgs, 0) && !flag(iArgs, 2)
                    && calls.recordedInput(reader, 1).dataType() == DataType.FLOAT && calls.recordedInput(reader, 1).rank() == query.rank()) {
                weighting = reader;
                break;
            }
        }
        if (weighting < 0) {
            return null;
        }
        members.add(weighting);
        if (Collections.max(members) != weighting || members.size() != produced.size() + 1) {
            return null;
        }
        Map<Part, Integer> written = FusedGroup.written(calls, members, produced, Part.class);
        if (written == null) {
            return null;
        }
        List<Integer> inputs = new ArrayList<>();
        for (int slot : calls.inputs(scoring)) {
            inputs.add(slot);
        }
        inputs.add(calls.inputs(weighting)[1]);
        if (masking >= 0) {
            inputs.add(calls.inputs(masking)[maskInput]);
        }
        int[] inputSlots = inputs.stream().mapToInt(Integer::intValue).filter(slot -> slot >= 0).toArray();
        long[] scoringArguments = calls.integerArguments(scoring);
        return new Fusion(weighting, members, scoring, flag(scoringArguments, 0), flag(scoringArguments, 1),
                flag(calls.integerArguments(weighting), 1), masking, maskInput, scale, written, calls.outputs(weighting)[0], inputSlots);
    }

    /** A {@code matmul} of two inputs into one output without scaling arguments (or with {@code (1, 0)}). */
    private static boolean isProduct(FusedGroup.Calls calls, int call) {
        double[] tArgs = calls.floatArguments(call);
        boolean plain = tArgs.length == 0 || (tArgs.length == 2 && tArgs[0] == 1.0 && tArgs[1] == 0.0);
        return plain && calls.inputs(call).length == 2 && calls.outputs(call).length == 1 && calls.integerArguments(call).length <= 3;
    }

    /** The {@code div_scalar} or {@code mul_scalar} of {@code slot} alone, by a constant, or -1. */
    private static int scalingReader(FusedGroup.Calls calls, int slot) {
        for (int reader : calls.readers(slot)) {
            DifferentialFunction op = calls.op(reader);
            boolean scales = op.opName().equals("div_scalar") || op.opName().equals("mul_scalar");
            if (scales && op instanceof ScalarOp scalarOp && calls.inputs(reader).length == 1 && calls.outputs(reader).length == 1
                    && scalarOp.dimensions() == null && scalarOp.scalar() != null && scalarOp.scalar().length() == 1
                    && (scalarOp.extraArgs() == null || scalarOp.extraArgs().length == 0)) {
                return reader;
            }
        }
        return -1;
    }

    /** The {@code softmax} over the last axis of {@code slot}, or -1. */
    private static int softmaxReader(FusedGroup.Calls calls, int slot, int rank) {
        for (int reader : calls.readers(slot)) {
            long[] iArgs = calls.integerArguments(reader);
            boolean lastAxis = iArgs.length == 0 || (iArgs.length == 1 && (iArgs[0] == rank - 1 || iArgs[0] == -1));
            if (calls.op(reader).opName().equals("softmax") && calls.inputs(reader).length == 1 && calls.outputs(reader).length == 1
                    && lastAxis && calls.floatArguments(reader).length == 0) {
                return reader;
            }
        }
        return -1;
    }

    /** Whether {@code mask} broadcasts to {@code scores} without changing it, axes aligned from the last. */
    private static boolean broadcasts(long[] mask, long[] scores) {
        if (mask.length > scores.length || mask.length == 0) {
            return false;
        }
        for (int i = 1; i <= mask.length; i++) {
            long size = mask[mask.length - i];
            if (size != 1 && size != scores[scores.length - i]) {
                return false;
            }
        }
        return true;
    }

    private static boolean flag(long[] iArgs, int index) {
        return iArgs.length > index && iArgs[index] != 0;
    }
}
