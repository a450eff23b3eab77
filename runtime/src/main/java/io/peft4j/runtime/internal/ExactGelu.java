package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.Arrays;
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
 * Finds, among a recording's op calls, the exact (erf) GELU written out as BERT's code writes it,
 * {@code y = (x · 0.5) · (erf(x / √2) + 1)}, and the six ops of its gradient that SameDiff's
 * differentiation builds, so that {@link RecordedStep} can run each group as one pass of peft4j's
 * kernels ({@link ReplayKernels#exactGelu}, {@link ReplayKernels#exactGeluGradient}).
 *
 * <p>ND4J has no op for this GELU ({@code gelu} is the sigmoid form, {@code precise_gelu} the tanh
 * form, neither equal to BERT's), so models that must match their PyTorch weights write it out: five
 * ops forward, three more for SameDiff's derivative of {@code erf}, six backward, each a pass over
 * {@code [batch, sequence, 4d]} (all-MiniLM-L6-v2: about 20 ms a layer per training step on this
 * project's machine, BENCHMARKS.md). A group is fused only when nothing outside it reads what it
 * computes before its last op, and only the values read elsewhere are written; division by √2 and
 * multiplication by 1/√2 are both recognised, and either operand order of the products and the sum.
 * Other spellings (the 0.5 applied last, {@code Φ} through {@code erfc}) are left as they are.
 */
public final class ExactGelu {
    private static final float SQRT_2 = (float) Math.sqrt(2.0);
    private static final float TOLERANCE = 1e-6f;

    /** The values of the forward group that a step may read elsewhere. */
    public enum Part { HALF, SCALED, ERF, ONE_PLUS_ERF, SQUARED, NEGATED, GAUSSIAN, OUTPUT }

    /**
     * The scalars of the recorded ops, so that the fused pass computes with the same floats.
     *
     * @param half          what {@code x} is multiplied by (0.5)
     * @param scale         √2 when {@code divideByScale}, else 1/√2
     * @param divideByScale whether {@code x} is divided by {@code scale} or multiplied by it
     * @param one           what {@code erf} is added to (1)
     */
    public record Scalars(float half, float scale, boolean divideByScale, float one) {
    }

    /**
     * One group of calls to run as one pass at its last call, {@code anchor}.
     *
     * @param members       the calls of the group, {@code anchor} among them
     * @param gradient      whether this is a gradient group
     * @param forwardInput  a forward group's input slot ({@code x}); -1 for a gradient group
     * @param parts         a forward group's parts that calls after it read, by role: those it writes
     * @param gradientSlots a gradient group's slots, indexed by the constants below; null for a forward group
     */
    record Fusion(int anchor, Set<Integer> members, boolean gradient, Scalars scalars, int forwardInput, Map<Part, Integer> parts,
                  int[] gradientSlots) implements FusedGroup {
        /** The gradient group's slots: the output's gradient, HALF, ONE_PLUS_ERF, GAUSSIAN, the erf coefficient, the result. */
        static final int GRADIENT = 0;
        static final int HALF = 1;
        static final int ONE_PLUS_ERF = 2;
        static final int GAUSSIAN = 3;
        static final int COEFFICIENT = 4;
        static final int RESULT = 5;

        @Override
        public int[] inputs() {
            return gradient ? Arrays.copyOf(gradientSlots, RESULT) : new int[] {forwardInput};
        }

        @Override
        public Runnable kernel(ReplayKernels kernels, FusedGroup.StepArrays arrays) {
            if (gradient) {
                return kernels.exactGeluGradient(arrays.slot(gradientSlots[GRADIENT]), arrays.slot(gradientSlots[HALF]),
                        arrays.slot(gradientSlots[ONE_PLUS_ERF]), arrays.slot(gradientSlots[GAUSSIAN]), arrays.slot(gradientSlots[COEFFICIENT]),
                        arrays.slot(gradientSlots[RESULT]), scalars);
            }
            Map<Part, INDArray> written = new EnumMap<>(Part.class);
            parts.forEach((part, slot) -> written.put(part, arrays.slot(slot)));
            return kernels.exactGelu(arrays.slot(forwardInput), scalars, written);
        }
    }

    private ExactGelu() {
    }

    /** The forward groups and, for those whose parts it reads, the gradient groups. */
    static List<Fusion> find(FusedGroup.Calls calls) {
        List<Fusion> found = new ArrayList<>();
        for (int call = 0; call < calls.size(); call++) {
            if ("erf".equals(calls.op(call).opName())) {
                Fusion forward = forward(calls, call);
                if (forward != null) {
                    found.add(forward);
                    Fusion gradient = gradient(calls, forward);
                    if (gradient != null) {
                        found.add(gradient);
                    }
                }
            }
        }
        return found;
    }

    private static Fusion forward(FusedGroup.Calls calls, int erf) {
        int[] erfInputs = calls.inputs(erf);
        if (erfInputs.length != 1 || erfInputs[0] < 0 || calls.outputs(erf).length != 1) {
            return null;
        }
        int scaled = erfInputs[0];
        int scaling = producer(calls, scaled);
        Float divisor = scaling < 0 ? null : scalar(calls, scaling, "div_scalar");
        Float factor = scaling < 0 ? null : scalar(calls, scaling, "mul_scalar");
        boolean divides = divisor != null && Math.abs(divisor - SQRT_2) <= TOLERANCE;
        if (!divides && (factor == null || Math.abs(factor - 1 / SQRT_2) > TOLERANCE)) {
            return null;
        }
        int x = calls.inputs(scaling)[0];
        int plusOne = onlyReader(calls, calls.outputs(erf)[0]);
        Float one = plusOne < 0 ? null : scalar(calls, plusOne, "add_scalar");
        if (one == null || one != 1f || x < 0) {
            return null;
        }
        int onePlusErf = calls.outputs(plusOne)[0];
        int product = -1;
        int halving = -1;
        Float half = null;
        for (int reader : calls.readers(onePlusErf)) {
            int other = otherOperand(calls, reader, "multiply", onePlusErf);
            int producer = other < 0 ? -1 : producer(calls, other);
            Float value = producer < 0 ? null : scalar(calls, producer, "mul_scalar");
            if (value != null && value == 0.5f && calls.inputs(producer)[0] == x) {
                product = reader;
                halving = producer;
                half = value;
                break;
            }
        }
        if (product < 0) {
            return null;
        }
        Set<Integer> members = new TreeSet<>(List.of(halving, scaling, erf, plusOne, product));
        Map<Part, Integer> produced = new EnumMap<>(Part.class);
        produced.put(Part.HALF, calls.outputs(halving)[0]);
        produced.put(Part.SCALED, scaled);
        produced.put(Part.ERF, calls.outputs(erf)[0]);
        produced.put(Part.ONE_PLUS_ERF, onePlusErf);
        produced.put(Part.OUTPUT, calls.outputs(product)[0]);
        addGaussian(calls, scaled, members, produced);
        Scalars scalars = new Scalars(half, divides ? divisor : factor, divides, one);
        Map<Part, Integer> written = FusedGroup.written(calls, members, produced, Part.class);
        return written == null ? null : new Fusion(last(members), members, false, scalars, x, written, null);
    }

    /** SameDiff's derivative of erf squares, negates and exponentiates the scaled input in the forward pass. */
    private static void addGaussian(FusedGroup.Calls calls, int scaled, Set<Integer> members, Map<Part, Integer> produced) {
        for (int reader : calls.readers(scaled)) {
            int[] inputs = calls.inputs(reader);
            String name = calls.op(reader).opName();
            boolean squares = (name.equals("multiply") && inputs.length == 2 && inputs[0] == scaled && inputs[1] == scaled)
                    || (name.equals("square") && inputs.length == 1);
            if (!squares || calls.outputs(reader).length != 1) {
                continue;
            }
            int negation = onlyReader(calls, calls.outputs(reader)[0]);
            Float minusOne = negation < 0 ? null : scalar(calls, negation, "mul_scalar");
            boolean negates = negation >= 0 && (minusOne != null ? minusOne == -1f
                    : calls.op(negation).opName().equals("neg") && calls.inputs(negation).length == 1);
            int exponential = negates ? onlyReader(calls, calls.outputs(negation)[0]) : -1;
            if (exponential >= 0 && calls.op(exponential).opName().equals("exp") && calls.inputs(exponential).length == 1
                    && calls.outputs(exponential).length == 1) {
                members.addAll(List.of(reader, negation, exponential));
                produced.put(Part.SQUARED, calls.outputs(reader)[0]);
                produced.put(Part.NEGATED, calls.outputs(negation)[0]);
                produced.put(Part.GAUSSIAN, calls.outputs(exponential)[0]);
                return;
            }
        }
    }

    private static Fusion gradient(FusedGroup.Calls calls, Fusion forward) {
        Integer half = forward.parts().get(Part.HALF);
        Integer onePlusErf = forward.parts().get(Part.ONE_PLUS_ERF);
        Integer gaussian = forward.parts().get(Part.GAUSSIAN);
        if (half == null || onePlusErf == null || gaussian == null) {
            return null;
        }
        for (int productGradient : calls.readers(half)) {
            int[] inputs = calls.inputs(productGradient);
            if (!calls.op(productGradient).opName().equals("multiply_bp") || inputs.length != 3 || calls.outputs(productGradient).length != 2) {
                continue;
            }
            boolean halfFirst = inputs[0] == half && inputs[1] == onePlusErf;
            if (!halfFirst && !(inputs[0] == onePlusErf && inputs[1] == half)) {
                continue;
            }
            int[] outputs = calls.outputs(productGradient);
            int towardHalf = halfFirst ? outputs[0] : outputs[1];
            int towardErf = halfFirst ? outputs[1] : outputs[0];
            int halving = onlyReader(calls, towardHalf);
            Float halfScalar = halving < 0 ? null : scalar(calls, halving, "mul_scalar");
            int erfProduct = onlyReader(calls, towardErf);
            int derivative = erfProduct < 0 ? -1 : otherOperand(calls, erfProduct, "multiply", towardErf);
            int derivativeProduct = derivative < 0 ? -1 : producer(calls, derivative);
            int coefficient = derivativeProduct < 0 ? -1 : otherOperand(calls, derivativeProduct, "multiply", gaussian);
            if (halfScalar == null || halfScalar != forward.scalars().half() || coefficient < 0 || onlyReader(calls, derivative) != erfProduct) {
                continue;
            }
            int scaling = onlyReader(calls, calls.outputs(erfProduct)[0]);
            Float scale = scaling < 0 ? null
                    : scalar(calls, scaling, forward.scalars().divideByScale() ? "div_scalar" : "mul_scalar");
            if (scale == null || scale != forward.scalars().scale()) {
                continue;
            }
            int sum = onlyReader(calls, calls.outputs(halving)[0]);
            if (sum < 0 || onlyReader(calls, calls.outputs(scaling)[0]) != sum
                    || otherOperand(calls, sum, "add", calls.outputs(halving)[0]) != calls.outputs(scaling)[0]) {
                continue;
            }
            Set<Integer> members = new TreeSet<>(List.of(productGradient, halving, derivativeProduct, erfProduct, scaling, sum));
            boolean readOnlyInside = true;
            for (int member : members) {
                for (int slot : calls.outputs(member)) {
                    readOnlyInside &= member == sum || !calls.readAfterwards(slot);
                }
            }
            if (!readOnlyInside || last(members) != sum) {
                continue;
            }
            int[] slots = {inputs[2], half, onePlusErf, gaussian, coefficient, calls.outputs(sum)[0]};
            return new Fusion(sum, members, true, forward.scalars(), -1, Map.of(), slots);
        }
        return null;
    }

    /** The call that wrote {@code slot}, or -1. */
    private static int producer(FusedGroup.Calls calls, int slot) {
        for (int call = 0; call < calls.size(); call++) {
            for (int output : calls.outputs(call)) {
                if (output == slot) {
                    return call;
                }
            }
        }
        return -1;
    }

    /** The one call reading {@code slot} (once), or -1 when there are others or the step reads it too. */
    private static int onlyReader(FusedGroup.Calls calls, int slot) {
        List<Integer> readers = calls.readers(slot);
        return readers.size() == 1 && !calls.readAfterwards(slot) ? readers.get(0) : -1;
    }

    /** For a two-operand {@code opName} call that reads {@code slot}, its other operand's slot, or -1. */
    private static int otherOperand(FusedGroup.Calls calls, int call, String opName, int slot) {
        int[] inputs = calls.inputs(call);
        if (!calls.op(call).opName().equals(opName) || inputs.length != 2 || calls.outputs(call).length != 1) {
            return -1;
        }
        return inputs[0] == slot && inputs[1] != slot ? inputs[1] : inputs[1] == slot && inputs[0] != slot ? inputs[0] : -1;
    }

    /** The fp32 scalar of a one-input {@code opName} scalar op, or null. */
    private static Float scalar(FusedGroup.Calls calls, int call, String opName) {
        DifferentialFunction op = calls.op(call);
        if (!(op instanceof ScalarOp scalarOp) || !op.opName().equals(opName) || calls.inputs(call).length != 1
                || calls.outputs(call).length != 1 || scalarOp.dimensions() != null) {
            return null;
        }
        INDArray value = scalarOp.scalar();
        return value == null || value.length() != 1 ? null : value.castTo(DataType.FLOAT).getFloat(0);
    }

    private static int last(Set<Integer> members) {
        return Collections.max(members);
    }
}
