package io.peft4j.samples.minilm;

import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.LinkedHashMap;
import java.util.Map;
import onnx.Onnx;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.shade.protobuf.CodedInputStream;

/**
 * The weights of an ONNX export of a Hugging Face model, named by module path.
 *
 * <p>Parameters that kept their PyTorch names ({@code embeddings.word_embeddings.weight},
 * {@code encoder.layer.0.attention.self.query.bias}) are taken as they are. MatMul weights were renamed
 * by the exporter ({@code onnx::MatMul_787}, already in {@code [in, out]} layout); each is named after
 * the MatMul node that consumes it, whose output carries the module path
 * ({@code /encoder/layer.0/attention/self/query/MatMul_output_0} gives
 * {@code encoder.layer.0.attention.self.query.weight}). Parsing uses the ONNX protobuf classes that
 * ship with ND4J.
 */
public final class OnnxInitializers {

    private static final int FLOAT = 1;
    private static final String MATMUL_OUTPUT = "/MatMul_output_0";

    private OnnxInitializers() {
    }

    /** Every FLOAT initializer of the model in {@code onnx}, by module path. */
    public static Map<String, INDArray> read(InputStream onnx) {
        Onnx.GraphProto graph;
        try {
            CodedInputStream input = CodedInputStream.newInstance(onnx);
            input.setSizeLimit(Integer.MAX_VALUE); // the model is larger than protobuf's 64 MB default
            graph = Onnx.ModelProto.parseFrom(input).getGraph();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot parse the ONNX model", e);
        }
        Map<String, Onnx.TensorProto> initializers = new LinkedHashMap<>();
        graph.getInitializerList().forEach(tensor -> initializers.put(tensor.getName(), tensor));
        Map<String, INDArray> weights = new LinkedHashMap<>();
        for (Onnx.TensorProto tensor : initializers.values()) {
            if (tensor.getDataType() == FLOAT && !tensor.getName().startsWith("onnx::")) {
                weights.put(tensor.getName(), toArray(tensor));
            }
        }
        for (Onnx.NodeProto node : graph.getNodeList()) {
            if (!node.getOpType().equals("MatMul") || node.getInputCount() != 2 || !initializers.containsKey(node.getInput(1))) {
                continue;
            }
            String output = node.getOutput(0);
            if (!output.startsWith("/") || !output.endsWith(MATMUL_OUTPUT)) {
                throw new IllegalStateException("MatMul node " + node.getName() + " has output '" + output
                        + "', which names no module; cannot tell which layer " + node.getInput(1) + " belongs to");
            }
            String module = output.substring(1, output.length() - MATMUL_OUTPUT.length()).replace('/', '.');
            weights.put(module + ".weight", toArray(initializers.get(node.getInput(1))));
        }
        return weights;
    }

    private static INDArray toArray(Onnx.TensorProto tensor) {
        long[] shape = tensor.getDimsList().stream().mapToLong(Long::longValue).toArray();
        INDArray array = Nd4j.createUninitialized(DataType.FLOAT, shape, 'c');
        if (!tensor.getRawData().isEmpty()) {
            ByteBuffer bytes = tensor.getRawData().asReadOnlyByteBuffer().order(ByteOrder.LITTLE_ENDIAN);
            array.data().asNio().put(bytes);
        } else {
            float[] values = new float[tensor.getFloatDataCount()];
            for (int i = 0; i < values.length; i++) {
                values[i] = tensor.getFloatData(i);
            }
            array.assign(Nd4j.createFromArray(values).reshape(shape));
        }
        return array;
    }
}
