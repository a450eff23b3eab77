package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.ReplayKernels;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.List;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.ScalarOp;

/**
 * peft4j's replay kernels on the JDK's Vector API, for fp32 arrays contiguous in C order on the host.
 *
 * <p>Covered: the unary functions of {@link UnaryKernel.Function}; {@code add}, {@code subtract},
 * {@code multiply} and {@code divide} of equal shapes or with one operand broadcast along a run of
 * axes ({@link BinaryKernel.Layout}); the scalar ops {@code add_scalar}, {@code sub_scalar},
 * {@code rsub_scalar}, {@code mul_scalar}, {@code div_scalar} and {@code rdiv_scalar}; and
 * {@code softmax} along the last axis. Anything else, including the same ops on other data types,
 * strided views or other broadcasts, is left to libnd4j. Loaded by reflection
 * ({@link ReplayKernels#forThisProcess()}) so that nothing touches the incubator module in a JVM
 * started without it.
 */
public final class VectorKernels implements ReplayKernels {
    @Override
    public Runnable kernelFor(DifferentialFunction op, List<INDArray> inputs, INDArray[] outputs, long[] iArgs, double[] tArgs) {
        if (outputs.length != 1 || inputs.stream().anyMatch(java.util.Objects::isNull) || tArgs.length > 0) {
            return null;
        }
        String name = op.opName();
        INDArray output = outputs[0];
        UnaryKernel.Function function = UnaryKernel.Function.named(name);
        if (function != null && inputs.size() == 1 && iArgs.length == 0 && !(op instanceof ScalarOp)) {
            return unary(function, inputs.get(0), output);
        }
        BinaryKernel.Operation operation = BinaryKernel.Operation.named(name);
        if (operation != null && inputs.size() == 2 && iArgs.length == 0) {
            return binary(operation, inputs.get(0), inputs.get(1), output);
        }
        if (op instanceof ScalarOp scalarOp && inputs.size() == 1) {
            return scalar(name, scalarOp, inputs.get(0), output);
        }
        if (name.equals("softmax") && inputs.size() == 1) {
            return softmax(inputs.get(0), output, iArgs);
        }
        return null;
    }

    private static Runnable unary(UnaryKernel.Function function, INDArray input, INDArray output) {
        FloatRegion x = FloatRegion.of(input);
        FloatRegion y = FloatRegion.of(output);
        if (x == null || y == null || !Arrays.equals(input.shape(), output.shape())) {
            return null;
        }
        return new UnaryKernel(function, x, y);
    }

    private static Runnable binary(BinaryKernel.Operation operation, INDArray first, INDArray second, INDArray output) {
        FloatRegion a = FloatRegion.of(first);
        FloatRegion b = FloatRegion.of(second);
        FloatRegion z = FloatRegion.of(output);
        if (a == null || b == null || z == null) {
            return null;
        }
        if (Arrays.equals(first.shape(), output.shape())) {
            BinaryKernel.Layout layout = BinaryKernel.Layout.of(first.shape(), second.shape());
            return layout == null ? null : new BinaryKernel(operation, false, a, b, z, layout);
        }
        if (Arrays.equals(second.shape(), output.shape())) {
            BinaryKernel.Layout layout = BinaryKernel.Layout.of(second.shape(), first.shape());
            return layout == null ? null : new BinaryKernel(operation, true, b, a, z, layout);
        }
        return null;
    }

    private static Runnable scalar(String name, ScalarOp op, INDArray input, INDArray output) {
        FloatRegion a = FloatRegion.of(input);
        FloatRegion z = FloatRegion.of(output);
        INDArray value = op.scalar();
        if (a == null || z == null || value == null || value.length() != 1 || op.dimensions() != null
                || !Arrays.equals(input.shape(), output.shape()) || (op.extraArgs() != null && op.extraArgs().length > 0)) {
            return null;
        }
        BinaryKernel.Operation operation;
        boolean reversed = false;
        switch (name) {
            case "add_scalar" -> operation = BinaryKernel.Operation.ADD;
            case "sub_scalar" -> operation = BinaryKernel.Operation.SUBTRACT;
            case "rsub_scalar" -> {
                operation = BinaryKernel.Operation.SUBTRACT;
                reversed = true;
            }
            case "mul_scalar" -> operation = BinaryKernel.Operation.MULTIPLY;
            case "div_scalar" -> operation = BinaryKernel.Operation.DIVIDE;
            case "rdiv_scalar" -> {
                operation = BinaryKernel.Operation.DIVIDE;
                reversed = true;
            }
            default -> {
                return null;
            }
        }
        FloatRegion constant = constant(value.castTo(DataType.FLOAT).getFloat(0));
        return new BinaryKernel(operation, reversed, a, constant, z, new BinaryKernel.Layout(1, a.length(), 1));
    }

    private static Runnable softmax(INDArray input, INDArray output, long[] iArgs) {
        int rank = input.rank();
        long axis = iArgs.length == 0 ? rank - 1 : iArgs[0] < 0 ? iArgs[0] + rank : iArgs[0];
        FloatRegion x = FloatRegion.of(input);
        FloatRegion y = FloatRegion.of(output);
        if (iArgs.length > 1 || rank == 0 || axis != rank - 1 || x == null || y == null || !Arrays.equals(input.shape(), output.shape())) {
            return null;
        }
        return new SoftmaxKernel(x, y, (int) input.size(rank - 1));
    }

    private static FloatRegion constant(float value) {
        ByteBuffer bytes = ByteBuffer.allocateDirect(Float.BYTES).order(FloatRegion.ORDER);
        bytes.putFloat(0, value);
        return new FloatRegion(bytes, 0, 1);
    }
}
