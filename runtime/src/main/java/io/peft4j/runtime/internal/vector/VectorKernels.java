package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.AttentionGradient;
import io.peft4j.runtime.internal.ExactGelu;
import io.peft4j.runtime.internal.ReplayKernels;
import io.peft4j.runtime.internal.ScaledDotProductAttention;
import io.peft4j.runtime.internal.WrittenOutLayerNorm;
import java.nio.ByteBuffer;
import java.util.Arrays;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.ReduceOp;
import org.nd4j.linalg.api.ops.ScalarOp;

/**
 * peft4j's replay kernels on the JDK's Vector API, for fp32 arrays contiguous in C order on the host.
 *
 * <p>Covered: the ops of an eager decoding step that libnd4j runs per call ({@link DecodingKernels}:
 * a matrix times a rank-1 vector, a prompt's few rows times a weight plus a bias, {@code layer_norm} over the last axis, one query's
 * {@code dot_product_attention}) and a key/value cache's appends and attention
 * ({@link #cacheWriter}, {@link #cacheAttention}); {@code matmul} and {@code matmul_bp} of arrays of
 * rank 3 or more, attention's products, and of matrices with a short side, LoRA's ({@link BatchedProducts});
 * {@code exp}, {@code sigmoid}, {@code erf}, {@code gelu} and {@code _geluderivative}; {@code softmax}, {@code reduce_mean} and
 * {@code reduce_sum} along the last axis and the gradients of those reductions; {@code multiply_bp}
 * of operands of one shape; {@code permute} when the last axis stays last; and, up to
 * {@link #MAX_MEMORY_BOUND_ELEMENTS}, {@code add}, {@code subtract}, {@code multiply} and
 * {@code divide} of equal shapes or with one operand broadcast along a run of axes
 * ({@link BinaryKernel.Layout}), the scalar ops {@code add_scalar}, {@code sub_scalar},
 * {@code rsub_scalar}, {@code mul_scalar}, {@code div_scalar} and {@code rdiv_scalar}, and
 * {@code neg}, {@code sqrt}, {@code square} and {@code abs}; and BERT's written-out exact GELU with
 * its gradient, each group of ops as one pass ({@link ExactGelu}). Anything else, including the same ops
 * on other data types, strided views or other broadcasts, is left to libnd4j. Loaded by reflection
 * ({@link ReplayKernels#forThisProcess()}) so that nothing touches the incubator module in a JVM
 * started without it.
 */
public final class VectorKernels implements ReplayKernels {
    /**
     * The largest output for which memory-bound ops (arithmetic, negation, square roots) run here.
     * Inside training steps, a libnd4j call costs 5–40 µs however small its array, and this library's
     * kernel 1–7 µs on 1,024 elements; over 262,144 elements libnd4j's were as fast or faster
     * (0.84–1.5×; BENCHMARKS.md), so larger ones stay there. Transcendental functions, softmax,
     * reductions and copies run here at any size.
     */
    static final long MAX_MEMORY_BOUND_ELEMENTS = 32_768;

    /** Starts compiling the kernels in the background ({@link KernelWarmUp}). */
    public VectorKernels() {
        KernelWarmUp.start();
    }

    @Override
    public Runnable kernelFor(DifferentialFunction op, List<INDArray> inputs, INDArray[] outputs, long[] iArgs, double[] tArgs, boolean[] bArgs) {
        if (outputs.length == 0 || inputs.stream().anyMatch(Objects::isNull)) {
            return null;
        }
        String name = op.opName();
        boolean products = !"false".equalsIgnoreCase(System.getProperty(PRODUCT_PROPERTY));
        if (outputs.length == 1) {
            Runnable decoding = DecodingKernels.kernelFor(name, inputs, outputs[0], iArgs, tArgs, bArgs, products);
            if (decoding != null) {
                return decoding;
            }
        }
        if (products) {
            Runnable product = BatchedProducts.kernelFor(name, inputs, outputs, iArgs, tArgs, bArgs);
            if (product != null) {
                return product;
            }
        }
        if (tArgs.length > 0) {
            return null;
        }
        switch (name) {
            case "multiply_bp" -> {
                return outputs.length == 2 && inputs.size() == 3 && iArgs.length == 0 && bArgs.length == 0
                        ? productGradient(inputs, outputs) : null;
            }
            case "reduce_mean_bp", "reduce_sum_bp" -> {
                return outputs.length == 1 && inputs.size() == 2 ? reductionGradient(name, inputs.get(0), inputs.get(1), outputs[0], iArgs) : null;
            }
            default -> {
                // single-output ops below
            }
        }
        if (outputs.length != 1 || bArgs.length > 0) {
            return null;
        }
        INDArray output = outputs[0];
        if (op instanceof ReduceOp reduce && inputs.size() == 1 && (name.equals("reduce_mean") || name.equals("reduce_sum"))) {
            return rowReduction(reduce, inputs.get(0), output, iArgs, name.equals("reduce_mean"));
        }
        if (name.equals("permute") && inputs.size() == 1) {
            return permute(inputs.get(0), output, iArgs);
        }
        if (output.length() > MAX_MEMORY_BOUND_ELEMENTS && isMemoryBound(op, name)) {
            return null;
        }
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

    @Override
    public Runnable productSum(DifferentialFunction product, List<INDArray> inputs, long[] iArgs, double[] tArgs, INDArray addend,
                               INDArray sum, INDArray otherGradient) {
        if ("false".equalsIgnoreCase(System.getProperty(PRODUCT_PROPERTY)) || inputs.stream().anyMatch(Objects::isNull)) {
            return null;
        }
        return BatchedProducts.productSum(product.opName(), inputs, iArgs, tArgs, addend, sum, otherGradient);
    }

    @Override
    public Runnable exactGelu(INDArray x, ExactGelu.Scalars scalars, Map<ExactGelu.Part, INDArray> parts) {
        FloatRegion input = FloatRegion.of(x);
        Map<ExactGelu.Part, FloatRegion> regions = new EnumMap<>(ExactGelu.Part.class);
        for (Map.Entry<ExactGelu.Part, INDArray> part : parts.entrySet()) {
            FloatRegion region = FloatRegion.of(part.getValue());
            if (region == null || !Arrays.equals(x.shape(), part.getValue().shape())) {
                return null;
            }
            regions.put(part.getKey(), region);
        }
        return input == null ? null : new ExactGeluKernel(input, scalars, regions);
    }

    @Override
    public Runnable exactGeluGradient(INDArray gradient, INDArray half, INDArray onePlusErf, INDArray gaussian, INDArray coefficient,
                                      INDArray result, ExactGelu.Scalars scalars) {
        List<INDArray> arrays = List.of(gradient, half, onePlusErf, gaussian, coefficient, result);
        FloatRegion[] regions = new FloatRegion[arrays.size()];
        for (int i = 0; i < regions.length; i++) {
            regions[i] = FloatRegion.of(arrays.get(i));
            if (regions[i] == null || !Arrays.equals(gradient.shape(), arrays.get(i).shape())) {
                return null;
            }
        }
        return new ExactGeluGradientKernel(regions[0], regions[1], regions[2], regions[3], regions[4], regions[5], scalars);
    }

    @Override
    public Runnable writtenOutLayerNorm(WrittenOutLayerNorm.Stage stage, INDArray input, INDArray shifted, INDArray gain, INDArray bias,
                                        float epsilon, Map<WrittenOutLayerNorm.Part, INDArray> parts) {
        FloatRegion x = FloatRegion.of(input);
        FloatRegion g = gain == null ? null : FloatRegion.of(gain);
        FloatRegion b = bias == null ? null : FloatRegion.of(bias);
        FloatRegion s = shifted == null ? null : FloatRegion.of(shifted);
        boolean scales = stage != WrittenOutLayerNorm.Stage.STATISTICS;
        if (x == null || input.rank() < 2 || (scales && (g == null || b == null || gain.rank() != 1 || bias.rank() != 1))
                || (shifted != null && s == null)) {
            return null;
        }
        int width = (int) input.size(input.rank() - 1);
        if (scales && (g.length() != width || b.length() != width)) {
            return null;
        }
        Map<WrittenOutLayerNorm.Part, FloatRegion> regions = new EnumMap<>(WrittenOutLayerNorm.Part.class);
        long rows = input.length() / width;
        for (Map.Entry<WrittenOutLayerNorm.Part, INDArray> part : parts.entrySet()) {
            FloatRegion region = FloatRegion.of(part.getValue());
            long expected = WrittenOutLayerNormKernel.perRow(part.getKey()) ? rows : input.length();
            if (region == null || region.length() != expected) {
                return null;
            }
            regions.put(part.getKey(), region);
        }
        return new WrittenOutLayerNormKernel(stage, x, s, g, b, width, epsilon, regions);
    }

    @Override
    public Runnable attention(ScaledDotProductAttention.Operands operands, Map<ScaledDotProductAttention.Part, INDArray> parts,
                              INDArray output) {
        if ("false".equalsIgnoreCase(System.getProperty(PRODUCT_PROPERTY))) {
            return null;
        }
        BatchedMatrix query = BatchedMatrix.of(operands.query(), operands.queryTransposed());
        BatchedMatrix keys = BatchedMatrix.of(operands.keys(), operands.keysTransposed());
        BatchedMatrix values = BatchedMatrix.of(operands.values(), operands.valuesTransposed());
        FloatRegion out = FloatRegion.of(output);
        if (query == null || keys == null || values == null || out == null || output.rank() != operands.query().rank()) {
            return null;
        }
        int rank = output.rank();
        long[] scores = operands.query().shape().clone();
        scores[rank - 2] = query.rows();
        scores[rank - 1] = keys.columns();
        for (INDArray array : List.of(operands.keys(), operands.values(), output)) {
            if (array.rank() != rank || !Arrays.equals(array.shape(), 0, rank - 2, scores, 0, rank - 2)) {
                return null;
            }
        }
        if (output.size(rank - 2) != query.rows() || output.size(rank - 1) != values.columns()) {
            return null;
        }
        BatchedMatrix mask = null;
        if (operands.mask() != null) {
            mask = BatchedMatrix.broadcast(operands.mask(), scores);
            if (mask == null) {
                return null;
            }
        }
        Map<ScaledDotProductAttention.Part, FloatRegion> regions = new EnumMap<>(ScaledDotProductAttention.Part.class);
        for (Map.Entry<ScaledDotProductAttention.Part, INDArray> part : parts.entrySet()) {
            FloatRegion region = FloatRegion.of(part.getValue());
            if (region == null || !Arrays.equals(part.getValue().shape(), scores)) {
                return null;
            }
            regions.put(part.getKey(), region);
        }
        ScaledDotProductAttention.Scale scale = operands.scale();
        AttentionKernel.Scaling scaling = scale == null ? AttentionKernel.Scaling.NONE
                : scale.divides() ? AttentionKernel.Scaling.DIVIDE : AttentionKernel.Scaling.MULTIPLY;
        AttentionKernel.Targets targets = new AttentionKernel.Targets(regions.get(ScaledDotProductAttention.Part.SCORES),
                regions.get(ScaledDotProductAttention.Part.SCALED), regions.get(ScaledDotProductAttention.Part.MASKED),
                regions.get(ScaledDotProductAttention.Part.PROBABILITIES), out);
        return new AttentionKernel(query, keys, values, mask, scaling, scale == null ? 1f : scale.value(), targets);
    }

    @Override
    public Runnable attentionGradient(AttentionGradient.Operands operands, INDArray queryGradient, INDArray keyGradient,
                                      INDArray valueGradient) {
        if ("false".equalsIgnoreCase(System.getProperty(PRODUCT_PROPERTY)) || (operands.query() == null) != (keyGradient == null)) {
            return null;
        }
        BatchedMatrix query = operands.query() == null ? null : BatchedMatrix.of(operands.query(), false);
        BatchedMatrix keys = BatchedMatrix.of(operands.keys(), false);
        BatchedMatrix values = BatchedMatrix.of(operands.values(), false);
        BatchedMatrix probabilities = BatchedMatrix.of(operands.probabilities(), false);
        BatchedMatrix outputGradient = BatchedMatrix.of(operands.outputGradient(), false);
        FloatRegion dq = FloatRegion.of(queryGradient);
        FloatRegion dk = keyGradient == null ? null : FloatRegion.of(keyGradient);
        FloatRegion dv = FloatRegion.of(valueGradient);
        if ((operands.query() != null && (query == null || dk == null || !Arrays.equals(keyGradient.shape(), operands.keys().shape())))
                || keys == null || values == null || probabilities == null || outputGradient == null || dq == null || dv == null
                || !Arrays.equals(valueGradient.shape(), operands.values().shape())) {
            return null;
        }
        INDArray p = operands.probabilities();
        int rank = p.rank();
        long[] queryShape = p.shape().clone();
        queryShape[rank - 1] = keys.columns();
        if (!Arrays.equals(queryGradient.shape(), queryShape) || (operands.query() != null && !Arrays.equals(operands.query().shape(), queryShape))) {
            return null;
        }
        for (INDArray array : List.of(operands.keys(), operands.values(), operands.outputGradient())) {
            if (array.rank() != rank || !Arrays.equals(array.shape(), 0, rank - 2, p.shape(), 0, rank - 2)) {
                return null;
            }
        }
        if (values.rows() != keys.rows() || probabilities.columns() != keys.rows() || outputGradient.rows() != probabilities.rows()
                || outputGradient.columns() != values.columns()) {
            return null;
        }
        ScaledDotProductAttention.Scale scale = operands.scale();
        AttentionKernel.Scaling scaling = scale == null ? AttentionKernel.Scaling.NONE
                : scale.divides() ? AttentionKernel.Scaling.DIVIDE : AttentionKernel.Scaling.MULTIPLY;
        return new AttentionGradientKernel(query, keys, values, probabilities, outputGradient, scaling, scale == null ? 1f : scale.value(),
                new AttentionGradientKernel.Gradients(dq, dk, dv));
    }

    @Override
    public CacheKernel cacheAttention(INDArray query, INDArray keys, INDArray values, INDArray output, int heads, boolean scaled) {
        FloatRegion q = FloatRegion.of(query);
        FloatRegion k = FloatRegion.of(keys);
        FloatRegion v = FloatRegion.of(values);
        FloatRegion out = FloatRegion.of(output);
        if (q == null || k == null || v == null || out == null || keys.rank() != 2 || !Arrays.equals(keys.shape(), values.shape())
                || heads < 1 || keys.size(1) % heads != 0 || q.length() != keys.size(1) || out.length() != keys.size(1)) {
            return null;
        }
        int capacity = (int) keys.size(0);
        return new SingleQueryAttentionKernel(q, StridedRegion.byHead(k, capacity, heads), StridedRegion.byHead(v, capacity, heads), out, scaled);
    }

    @Override
    public CacheKernel cacheWriter(INDArray rows, INDArray cache) {
        FloatRegion source = FloatRegion.of(rows);
        FloatRegion target = FloatRegion.of(cache);
        if (source == null || target == null || rows.rank() != 2 || cache.rank() != 2 || rows.size(1) != cache.size(1)) {
            return null;
        }
        return new CacheWriterKernel(source, target, (int) cache.size(1));
    }

    @Override
    public ParameterStep adam(INDArray parameter, INDArray gradient, INDArray m, INDArray v) {
        FloatRegion p = FloatRegion.of(parameter);
        FloatRegion g = FloatRegion.of(gradient);
        FloatRegion first = FloatRegion.of(m);
        FloatRegion second = FloatRegion.of(v);
        if (p == null || g == null || first == null || second == null || g.length() != p.length() || first.length() != p.length()
                || second.length() != p.length()) {
            return null;
        }
        return new AdamKernel(p, g, first, second);
    }

    private static boolean isMemoryBound(DifferentialFunction op, String name) {
        UnaryKernel.Function function = UnaryKernel.Function.named(name);
        return op instanceof ScalarOp || BinaryKernel.Operation.named(name) != null || (function != null && function.cost <= 2);
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

    /**
     * multiply_bp of operands of one shape: (a, b, g) to (da, db). add_bp and subtract_bp are left to
     * libnd4j: two copies of g, no faster here inside a step (BENCHMARKS.md).
     */
    private static Runnable productGradient(List<INDArray> inputs, INDArray[] outputs) {
        long[] shape = inputs.get(0).shape();
        for (INDArray array : List.of(inputs.get(1), inputs.get(2), outputs[0], outputs[1])) {
            if (!Arrays.equals(shape, array.shape())) {
                return null;
            }
        }
        FloatRegion a = FloatRegion.of(inputs.get(0));
        FloatRegion b = FloatRegion.of(inputs.get(1));
        FloatRegion g = FloatRegion.of(inputs.get(2));
        FloatRegion da = FloatRegion.of(outputs[0]);
        FloatRegion db = FloatRegion.of(outputs[1]);
        if (a == null || b == null || g == null || da == null || db == null) {
            return null;
        }
        return new ProductGradientKernel(a, b, g, da, db);
    }

    /** reduce_mean_bp or reduce_sum_bp of a reduction along the last axis: (x, g) to dx. */
    private static Runnable reductionGradient(String name, INDArray input, INDArray gradient, INDArray output, long[] iArgs) {
        int rank = input.rank();
        if (rank == 0 || iArgs.length != 1 || (iArgs[0] != rank - 1 && iArgs[0] != -1) || !Arrays.equals(input.shape(), output.shape())) {
            return null;
        }
        int width = (int) input.size(rank - 1);
        FloatRegion g = FloatRegion.of(gradient);
        FloatRegion y = FloatRegion.of(output);
        if (g == null || y == null || (long) g.length() * width != y.length()) {
            return null;
        }
        return new RowBroadcastKernel(g, y, width, name.equals("reduce_mean_bp") ? width : 1f);
    }

    /** reduce_mean or reduce_sum (ND4J's legacy reductions, their axes held by the op) along the last axis. */
    private static Runnable rowReduction(ReduceOp reduce, INDArray input, INDArray output, long[] iArgs, boolean mean) {
        INDArray dimensions = reduce.dimensions();
        int rank = input.rank();
        if (iArgs.length > 0 || dimensions == null || dimensions.length() != 1 || rank == 0) {
            return null;
        }
        long axis = dimensions.getLong(0) < 0 ? dimensions.getLong(0) + rank : dimensions.getLong(0);
        FloatRegion x = FloatRegion.of(input);
        FloatRegion y = FloatRegion.of(output);
        int width = (int) input.size(rank - 1);
        if (axis != rank - 1 || x == null || y == null || (long) y.length() * width != x.length()) {
            return null;
        }
        return new RowReductionKernel(x, y, width, mean);
    }

    /** permute by axes given as integer arguments, keeping the last axis last. */
    private static Runnable permute(INDArray input, INDArray output, long[] iArgs) {
        int rank = input.rank();
        if (iArgs.length != rank || rank < 2) {
            return null;
        }
        int[] axes = new int[rank];
        long[] permuted = new long[rank];
        for (int i = 0; i < rank; i++) {
            axes[i] = (int) (iArgs[i] < 0 ? iArgs[i] + rank : iArgs[i]);
            if (axes[i] < 0 || axes[i] >= rank) {
                return null;
            }
            permuted[i] = input.size(axes[i]);
        }
        FloatRegion x = FloatRegion.of(input);
        FloatRegion y = FloatRegion.of(output);
        if (axes[rank - 1] != rank - 1 || x == null || y == null || !Arrays.equals(permuted, output.shape())) {
            return null;
        }
        return new PermuteKernel(x, input.shape(), axes, y);
    }

    private static FloatRegion constant(float value) {
        ByteBuffer bytes = ByteBuffer.allocateDirect(Float.BYTES).order(FloatRegion.ORDER);
        bytes.putFloat(0, value);
        return new FloatRegion(bytes, 0, 1);
    }
}
