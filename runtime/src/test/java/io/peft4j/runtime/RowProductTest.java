package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** One row times a matrix, plain and in a session, equals ND4J's matrix product of that row. */
class RowProductTest {
    private static final Object LAYER = new Object();

    @Test
    void eachFormEqualsTheMatrixProduct() {
        INDArray row = Nd4j.rand(DataType.FLOAT, 1, 5).subi(0.5);
        INDArray matrix = Nd4j.rand(DataType.FLOAT, 5, 3).subi(0.5);
        INDArray bias = Nd4j.createFromArray(1f, -2f, 3f);
        INDArray product = row.mmul(matrix);
        INDArray withBias = product.addRowVector(bias);
        INDArray transposedProduct = row.mmul(matrix.transpose().dup('c').transpose());

        assertClose(product, RowProduct.times(LAYER, "times", row, matrix));
        assertClose(withBias, RowProduct.timesPlus(LAYER, "plus", row.reshape(5), matrix, bias));
        assertClose(transposedProduct, RowProduct.timesTransposed(LAYER, "transposed", row, matrix.transpose().dup('c')));
        try (EagerSession session = new EagerSession()) {
            for (int pass = 0; pass < 2; pass++) {
                assertClose(product, session.run(() -> RowProduct.times(LAYER, "times", row, matrix)));
                assertClose(withBias, session.run(() -> RowProduct.timesPlus(LAYER, "plus", row, matrix, bias)));
                assertClose(transposedProduct, session.run(() -> RowProduct.timesTransposed(LAYER, "transposed", row, matrix.transpose().dup('c'))));
            }
        }
    }

    private static void assertClose(INDArray expected, INDArray actual) {
        assertArrayEquals(new long[] {1, 3}, actual.shape());
        assertTrue(expected.equalsWithEps(actual, 1e-6), actual + " instead of " + expected);
    }
}
