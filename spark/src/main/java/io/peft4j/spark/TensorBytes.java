package io.peft4j.spark;

import java.io.Serializable;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** An array's values as Java bytes (little-endian), to move between executors and the driver. */
record TensorBytes(DataType dtype, long[] shape, byte[] data) implements Serializable {

    static TensorBytes of(INDArray array) {
        INDArray dense = array.dup('c');
        DataType dtype = dense.dataType();
        ByteBuffer buffer = ByteBuffer.allocate((int) (dense.length() * dtype.width())).order(ByteOrder.LITTLE_ENDIAN);
        if (dtype == DataType.DOUBLE) {
            for (double value : dense.data().asDouble()) {
                buffer.putDouble(value);
            }
        } else if (dtype == DataType.FLOAT) {
            for (float value : dense.data().asFloat()) {
                buffer.putFloat(value);
            }
        } else {
            throw new IllegalArgumentException("Trainable arrays are FLOAT or DOUBLE here, not " + dtype);
        }
        return new TensorBytes(dtype, dense.shape(), buffer.array());
    }

    INDArray toArray() {
        ByteBuffer buffer = ByteBuffer.wrap(data).order(ByteOrder.LITTLE_ENDIAN);
        if (dtype == DataType.DOUBLE) {
            double[] values = new double[data.length / 8];
            buffer.asDoubleBuffer().get(values);
            return Nd4j.create(values, shape, 'c');
        }
        float[] values = new float[data.length / 4];
        buffer.asFloatBuffer().get(values);
        return Nd4j.create(values, shape, 'c');
    }
}
