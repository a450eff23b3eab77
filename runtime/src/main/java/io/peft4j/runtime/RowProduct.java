package io.peft4j.runtime;

import org.nd4j.linalg.api.blas.params.MMulTranspose;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.reduce.Mmul;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.AddOp;

/**
 * One row times a matrix, the product of an eager decoding step, as a matrix-vector product on
 * rank-1 operands: ND4J hands that to BLAS's gemv, while it multiplies a {@code [1, in]} row as a
 * matrix-matrix product, several times slower at these sizes (the GPT sample's 24 projections of a
 * step: 0.2–0.3 ms against 1.3–1.9 ms; BENCHMARKS.md). Ops and outputs go through
 * {@link EagerSession}: reused in a session, plain without one.
 *
 * <p>Shapes: {@code row} has {@code in} elements ({@code [1, in]} or {@code [in]}); the result is
 * {@code [1, out]}, an {@link EagerSession#outputFor} array of {@code owner} and {@code name}.
 */
public final class RowProduct {
    private static final MMulTranspose BY_COLUMNS = MMulTranspose.builder().transposeA(true).build();

    private RowProduct() {
    }

    /** {@code row · matrix} for {@code matrix [in, out]}. */
    public static INDArray times(Object owner, String name, INDArray row, INDArray matrix) {
        return product(owner, name, row, matrix, matrix.size(1), BY_COLUMNS);
    }

    /** {@code row · matrix + bias} for {@code matrix [in, out]} and {@code bias [out]}. */
    public static INDArray timesPlus(Object owner, String name, INDArray row, INDArray matrix, INDArray bias) {
        INDArray result = times(owner, name, row, matrix);
        INDArray flat = EagerSession.reshape(result, bias.length());
        EagerSession.call(owner, name + " + bias", () -> new AddOp(flat, bias, flat), flat, flat, bias);
        return result;
    }

    /** {@code row · matrixᵀ} for {@code matrix [out, in]} (a tied output projection, a weight stored {@code [out, in]}). */
    public static INDArray timesTransposed(Object owner, String name, INDArray row, INDArray matrix) {
        return product(owner, name, row, matrix, matrix.size(0), MMulTranspose.allFalse());
    }

    private static INDArray product(Object owner, String name, INDArray row, INDArray matrix, long out, MMulTranspose transpose) {
        INDArray vector = EagerSession.reshape(row, row.length());
        INDArray result = EagerSession.outputFor(owner, name, row.dataType(), 1, out);
        INDArray flat = EagerSession.reshape(result, out);
        EagerSession.call(owner, name, () -> new Mmul(matrix, vector, flat, 1.0, 0.0, transpose), flat, matrix, vector);
        return result;
    }
}
