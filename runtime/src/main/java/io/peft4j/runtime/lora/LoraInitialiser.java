package io.peft4j.runtime.lora;

import io.peft4j.annotations.LoraInit;
import io.peft4j.annotations.WeightLayout;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The starting factors of a new LoRA branch, {@code A [in, r]} and {@code B [r, out]}, for each of
 * PEFT's {@code init_lora_weights} choices ({@link LoraInit}), and for PiSSA and OLoRA the residual
 * weight {@code W - s·A·B} that replaces the base weight so that the adapted model starts unchanged.
 *
 * <p>PEFT works on PyTorch's {@code [out, in]} weight with {@code lora_A [r, in]} and
 * {@code lora_B [out, r]}; peft4j's A and B are their transposes, so each formula below is PEFT's,
 * transposed.
 */
final class LoraInitialiser {

    /** The factors, and the residual weight in the weight's own layout ({@code null} when the weight stays). */
    record Start(INDArray a, INDArray b, INDArray residualWeight) {
    }

    private LoraInitialiser() {
    }

    static Start start(LoraSettings settings, INDArray weight, WeightLayout layout, long in, long out, DataType dtype, Random random) {
        int rank = settings.rank();
        return switch (settings.init()) {
            case DEFAULT -> new Start(kaimingUniform(in, rank, dtype, random), Nd4j.zeros(dtype, rank, out), null);
            case GAUSSIAN -> new Start(Nd4j.randn(random, in, rank).castTo(dtype).muli(1.0 / rank), Nd4j.zeros(dtype, rank, out), null);
            case PISSA -> withResidual(pissa(outIn(weight, layout), settings), weight, layout, settings, dtype);
            case OLORA -> withResidual(olora(outIn(weight, layout), rank), weight, layout, settings, dtype);
        };
    }

    /** PEFT's default for lora_A: kaiming-uniform with {@code a = √5} over fan-in, i.e. {@code U(-1/√in, 1/√in)}. */
    private static INDArray kaimingUniform(long in, int rank, DataType dtype, Random random) {
        double bound = 1.0 / Math.sqrt(in);
        return Nd4j.rand(random, in, rank).castTo(dtype).muli(2 * bound).subi(bound);
    }

    /** PyTorch's view of the weight, {@code [out, in]}, in double precision. */
    private static INDArray outIn(INDArray weight, WeightLayout layout) {
        INDArray asDouble = weight.castTo(DataType.DOUBLE);
        return layout == WeightLayout.IN_OUT ? asDouble.transpose().dup() : asDouble.dup();
    }

    /**
     * PiSSA: {@code W [out, in] = U·S·Vᵀ}; with {@code S_r' = S_r / s}, PEFT's {@code lora_A = √S_r'·V_rᵀ}
     * and {@code lora_B = U_r·√S_r'}, so {@code s·lora_B·lora_A = U_r·S_r·V_rᵀ}.
     */
    private static INDArray[] pissa(INDArray w, LoraSettings settings) {
        // libnd4j's svd op: outputs s [k], u [out, k], v [in, k] with w = u·diag(s)·vᵀ; iArgs fullUV = 0, computeUV = 1, switchNum = 16.
        INDArray[] usv = Nd4j.exec(DynamicCustomOp.builder("svd").addInputs(w).addIntegerArguments(0, 1, 16).build());
        int rank = settings.rank();
        INDArray rootS = usv[0].get(org.nd4j.linalg.indexing.NDArrayIndex.interval(0, rank)).div(settings.scaling());
        rootS = org.nd4j.linalg.ops.transforms.Transforms.sqrt(rootS, false);
        INDArray uR = usv[1].get(org.nd4j.linalg.indexing.NDArrayIndex.all(), org.nd4j.linalg.indexing.NDArrayIndex.interval(0, rank));
        INDArray vR = usv[2].get(org.nd4j.linalg.indexing.NDArrayIndex.all(), org.nd4j.linalg.indexing.NDArrayIndex.interval(0, rank));
        INDArray a = vR.mulRowVector(rootS);                 // [in, r] = (√S_r'·V_rᵀ)ᵀ
        INDArray b = uR.mulRowVector(rootS).transpose().dup(); // [r, out] = (U_r·√S_r')ᵀ
        return new INDArray[] {a, b};
    }

    /** OLoRA: {@code W [out, in] = Q·R}; PEFT's {@code lora_A = R[:r]} and {@code lora_B = Q[:, :r]}. */
    private static INDArray[] olora(INDArray w, int rank) {
        HouseholderQr qr = HouseholderQr.of(w.toDoubleMatrix());
        double[][] q = qr.q();
        double[][] r = qr.r();
        double[][] a = new double[r[0].length][rank];
        double[][] b = new double[rank][q.length];
        for (int j = 0; j < rank; j++) {
            for (int c = 0; c < r[0].length; c++) {
                a[c][j] = r[j][c];
            }
            for (int i = 0; i < q.length; i++) {
                b[j][i] = q[i][j];
            }
        }
        return new INDArray[] {Nd4j.create(a), Nd4j.create(b)};
    }

    private static Start withResidual(INDArray[] factors, INDArray weight, WeightLayout layout, LoraSettings settings, DataType dtype) {
        INDArray deltaInOut = factors[0].mmul(factors[1]).muli(settings.scaling());
        INDArray delta = layout == WeightLayout.IN_OUT ? deltaInOut : deltaInOut.transpose();
        INDArray residual = weight.castTo(DataType.DOUBLE).sub(delta).castTo(weight.dataType());
        return new Start(factors[0].castTo(dtype), factors[1].castTo(dtype), residual);
    }
}
