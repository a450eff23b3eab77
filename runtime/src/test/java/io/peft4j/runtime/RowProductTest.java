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

    /**
     * In a session the product runs in a kernel bound to its arrays (where the process has peft4j's
     * kernels): a pass with new values in the same arrays, and one with other arrays, must each give
     * their own product.
     */
    @Test
    void aSessionFollowsNewValuesAndNewArrays() {
        INDArray row = Nd4j.rand(DataType.FLOAT, 1, 70).subi(0.5);
        INDArray matrix = Nd4j.rand(DataType.FLOAT, 70, 3).subi(0.5);
        INDArray bias = Nd4j.createFromArray(1f, -2f, 3f);
        try (EagerSession session = new EagerSession()) {
            assertClose(row.mmul(matrix).addRowVector(bias), session.run(() -> RowProduct.timesPlus(LAYER, "plus", row, matrix, bias)));
            matrix.muli(-2);
            bias.addi(1);
            assertClose(row.mmul(matrix).addRowVector(bias), session.run(() -> RowProduct.timesPlus(LAYER, "plus", row, matrix, bias)));
            INDArray otherRow = Nd4j.rand(DataType.FLOAT, 1, 70);
            INDArray otherMatrix = Nd4j.rand(DataType.FLOAT, 70, 3);
            assertClose(otherRow.mmul(otherMatrix).addRowVector(bias),
                    session.run(() -> RowProduct.timesPlus(LAYER, "plus", otherRow, otherMatrix, bias)));
        }
    }

    private static void assertClose(INDArray expected, INDArray actual) {
        assertArrayEquals(new long[] {1, 3}, actual.shape());
        assertTrue(expected.equalsWithEps(actual, 1e-5), actual + " instead of " + expected);
    }
}
