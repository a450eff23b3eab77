package io.peft4j.spark;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.Base64;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One worker's step for {@code BarrierTaskContext.allGather}, which carries strings: its loss and its
 * gradients in the trainable variables' order, as Base64 of little-endian values. Every worker averages
 * the same messages in worker order, so every worker gets bit-identical updates.
 */
final class GradientMessage {

    private GradientMessage() {
    }

    static String encode(double loss, List<String> order, Map<String, INDArray> gradients) {
        long bytes = 8;
        for (String name : order) {
            INDArray gradient = gradients.get(name);
            bytes += gradient.length() * gradient.dataType().width();
        }
        ByteBuffer buffer = ByteBuffer.allocate(Math.toIntExact(bytes)).order(ByteOrder.LITTLE_ENDIAN);
        buffer.putDouble(loss);
        for (String name : order) {
            INDArray gradient = gradients.get(name).dup('c');
            if (gradient.dataType() == DataType.DOUBLE) {
                for (double value : gradient.data().asDouble()) {
                    buffer.putDouble(value);
                }
            } else {
                for (float value : gradient.data().asFloat()) {
                    buffer.putFloat(value);
                }
            }
        }
        return Base64.getEncoder().encodeToString(buffer.array());
    }

    /** The workers' mean loss and mean gradients, each of its parameter's shape and dtype. */
    static Averaged average(String[] messages, List<String> order, Map<String, INDArray> parameters) {
        Map<String, INDArray> sums = new LinkedHashMap<>();
        double loss = 0;
        for (String message : messages) {
            ByteBuffer buffer = ByteBuffer.wrap(Base64.getDecoder().decode(message)).order(ByteOrder.LITTLE_ENDIAN);
            loss += buffer.getDouble();
            for (String name : order) {
                INDArray parameter = parameters.get(name);
                INDArray values;
                if (parameter.dataType() == DataType.DOUBLE) {
                    double[] read = new double[(int) parameter.length()];
                    buffer.asDoubleBuffer().get(read);
                    buffer.position(buffer.position() + read.length * 8);
                    values = Nd4j.create(read, parameter.shape(), 'c');
                } else {
                    float[] read = new float[(int) parameter.length()];
                    buffer.asFloatBuffer().get(read);
                    buffer.position(buffer.position() + read.length * 4);
                    values = Nd4j.create(read, parameter.shape(), 'c');
                }
                INDArray sum = sums.get(name);
                if (sum == null) {
                    sums.put(name, values);
                } else {
                    sum.addi(values);
                }
            }
        }
        sums.values().forEach(sum -> sum.divi(messages.length));
        return new Averaged(loss / messages.length, sums);
    }

    record Averaged(double loss, Map<String, INDArray> gradients) {
    }
}
