package io.peft4j.runtime.internal.vector;

import java.util.List;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Binds the ops of an eager decoding step that only peft4j's kernels cover to them: the product of
 * one row ({@code matmul} of a matrix and a rank-1 vector, as {@code RowProduct} calls it), a
 * prompt's few rows times a weight plus a bias ({@code xw_plus_b} of up to
 * {@link RowProductKernel#MAX_INPUT_ROWS} rows, when matrix products run here),
 * {@code layer_norm} over the last axis, {@code dot_product_attention} of one query without a
 * mask, and {@code gather} of a table's rows by INT32 indices (an embedding lookup). Each returns {@code null} for any other form of the op, which then runs in libnd4j.
 */
final class DecodingKernels {
    private DecodingKernels() {
    }

    /**
     * A kernel for op {@code name} with these arrays and arguments, or {@code null}; {@code products}
     * says whether matrix products of several rows run here ({@code -Dpeft4j.productKernels}).
     */
    static Runnable kernelFor(String name, List<INDArray> inputs, INDArray output, long[] iArgs, double[] tArgs, boolean[] bArgs,
            boolean products) {
        return switch (name) {
            case "matmul" -> rowProduct(inputs, output, iArgs, tArgs, bArgs);
            case "xw_plus_b" -> products ? fewRowsPlusBias(inputs, output, iArgs, tArgs, bArgs) : null;
            case "gather" -> rowGather(inputs, output, iArgs, tArgs, bArgs);
            case "layer_norm" -> layerNorm(inputs, output, iArgs, tArgs, bArgs);
            case "dot_product_attention" -> attention(inputs, output, iArgs, tArgs, bArgs);
            default -> null;
        };
    }

    /** {@code matmul(matrix, vector)}, the matrix transposed or not, no scaling, no transposed result. */
    private static Runnable rowProduct(List<INDArray> inputs, INDArray output, long[] iArgs, double[] tArgs, boolean[] bArgs) {
        boolean plainScale = tArgs.length == 0 || (tArgs.length == 2 && tArgs[0] == 1.0 && tArgs[1] == 0.0);
        if (inputs.size() != 2 || iArgs.length != 3 || iArgs[1] != 0 || iArgs[2] != 0 || !plainScale || bArgs.length > 0) {
            return null;
        }
        INDArray matrix = inputs.get(0);
        INDArray vector = inputs.get(1);
        if (matrix.rank() != 2 || vector.rank() != 1 || output.rank() != 1) {
            return null;
        }
        FloatRegion m = FloatRegion.of(matrix);
        FloatRegion v = FloatRegion.of(vector);
        FloatRegion y = FloatRegion.of(output);
        RowProductKernel.Layout layout = iArgs[0] != 0 ? RowProductKernel.Layout.TRANSPOSED : RowProductKernel.Layout.PLAIN;
        int in = (int) (layout == RowProductKernel.Layout.TRANSPOSED ? matrix.size(0) : matrix.size(1));
        int out = (int) (layout == RowProductKernel.Layout.TRANSPOSED ? matrix.size(1) : matrix.size(0));
        if (m == null || v == null || y == null || v.length() != in || y.length() != out) {
            return null;
        }
        return new RowProductKernel(m, (int) matrix.size(0), (int) matrix.size(1), v, y, layout);
    }

    /** {@code xw_plus_b(x [count, in], weight [in, out], bias [out])} for a few rows, the weight not transposed. */
    private static Runnable fewRowsPlusBias(List<INDArray> inputs, INDArray output, long[] iArgs, double[] tArgs, boolean[] bArgs) {
        if (inputs.size() != 3 || tArgs.length > 0 || bArgs.length > 0 || java.util.Arrays.stream(iArgs).anyMatch(flag -> flag != 0)) {
            return null;
        }
        INDArray x = inputs.get(0);
        INDArray weight = inputs.get(1);
        INDArray bias = inputs.get(2);
        if (x.rank() != 2 || weight.rank() != 2 || output.rank() != 2 || x.size(0) > RowProductKernel.MAX_INPUT_ROWS || x.size(1) != weight.size(0)
                || bias.length() != weight.size(1) || output.size(0) != x.size(0) || output.size(1) != weight.size(1)) {
            return null;
        }
        FloatRegion rows = FloatRegion.of(x);
        FloatRegion w = FloatRegion.of(weight);
        FloatRegion b = FloatRegion.of(bias);
        FloatRegion y = FloatRegion.of(output);
        if (rows == null || w == null || b == null || y == null) {
            return null;
        }
        return new RowProductKernel(w, (int) weight.size(0), (int) weight.size(1), (int) x.size(0), rows, b, y, RowProductKernel.Layout.TRANSPOSED);
    }

    /** {@code gather(table [rows, width], indices [count])} along axis 0, the indices INT32, into {@code [count, width]}. */
    private static Runnable rowGather(List<INDArray> inputs, INDArray output, long[] iArgs, double[] tArgs, boolean[] bArgs) {
        if (inputs.size() != 2 || iArgs.length != 1 || iArgs[0] != 0 || tArgs.length > 0 || bArgs.length > 0) {
            return null;
        }
        INDArray table = inputs.get(0);
        INDArray indices = inputs.get(1);
        if (table.rank() != 2 || indices.rank() != 1 || indices.dataType() != org.nd4j.linalg.api.buffer.DataType.INT32 || output.rank() != 2
                || output.size(0) != indices.length() || output.size(1) != table.size(1) || indices.length() > 1 && indices.stride(0) != 1) {
            return null;
        }
        FloatRegion rows = FloatRegion.of(table);
        FloatRegion y = FloatRegion.of(output);
        java.nio.ByteBuffer indexBytes = indices.data().asNio();
        if (rows == null || y == null || indexBytes == null || !indexBytes.isDirect()) {
            return null;
        }
        return new RowGatherKernel(rows, (int) table.size(0), (int) table.size(1), indexBytes, (int) indices.offset() * Integer.BYTES,
                (int) indices.length(), y);
    }

    /** {@code layer_norm(x, gain, bias)} over the last axis, channels last. */
    private static Runnable layerNorm(List<INDArray> inputs, INDArray output, long[] iArgs, double[] tArgs, boolean[] bArgs) {
        if (inputs.size() != 3 || iArgs.length != 1 || tArgs.length > 0 || (bArgs.length > 0 && (bArgs.length > 1 || bArgs[0]))) {
            return null;
        }
        INDArray x = inputs.get(0);
        int rank = x.rank();
        long width = rank == 0 ? 0 : x.size(rank - 1);
        if (rank == 0 || (iArgs[0] != rank - 1 && iArgs[0] != -1) || inputs.get(1).length() != width || inputs.get(2).length() != width
                || !java.util.Arrays.equals(x.shape(), output.shape())) {
            return null;
        }
        FloatRegion in = FloatRegion.of(x);
        FloatRegion gain = FloatRegion.of(inputs.get(1));
        FloatRegion bias = FloatRegion.of(inputs.get(2));
        FloatRegion y = FloatRegion.of(output);
        return in == null || gain == null || bias == null || y == null ? null : new LayerNormKernel(in, gain, bias, y);
    }

    /** {@code dot_product_attention(queries, keys, values)} of one query, no mask, no weights output. */
    private static Runnable attention(List<INDArray> inputs, INDArray output, long[] iArgs, double[] tArgs, boolean[] bArgs) {
        if (inputs.size() != 3 || iArgs.length != 2 || iArgs[1] != 0 || tArgs.length > 0 || bArgs.length > 0) {
            return null;
        }
        INDArray queries = inputs.get(0);
        if (queries.rank() != 3 || queries.size(2) != 1 || output.rank() != 3 || output.size(2) != 1) {
            return null;
        }
        FloatRegion q = FloatRegion.of(queries);
        StridedRegion keys = StridedRegion.of(inputs.get(1));
        StridedRegion values = StridedRegion.of(inputs.get(2));
        FloatRegion out = FloatRegion.of(output);
        if (q == null || keys == null || values == null || out == null || keys.shape()[1] != queries.size(1)
                || keys.shape()[0] != queries.size(0) || values.shape()[0] != queries.size(0) || values.shape()[2] != keys.shape()[2]
                || output.size(0) != queries.size(0) || output.size(1) != values.shape()[1]
                || keys.strides()[1] != 1 || values.strides()[1] != 1) {
            return null;
        }
        return new SingleQueryAttentionKernel(q, keys, values, out, iArgs[0] != 0);
    }
}
