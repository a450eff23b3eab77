package io.peft4j.runtime.lora;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.spi.LoraMerge;
import io.peft4j.runtime.spi.LoraWeights;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.controlflow.compat.StopGradient;

/**
 * DoRA's magnitude vector on one LoRA branch (Liu et al., 2024; PEFT's {@code lora_magnitude_vector}):
 * the layer computes {@code x · W'} with {@code W' = (W + s·A·B) · diag(m / ‖W + s·A·B‖)}, the norm
 * taken per output feature (per column of peft4j's {@code [in, out]} weight, per row of PyTorch's
 * {@code [out, in]}, as PEFT's {@code get_weight_norm}) and treated as a constant in the backward pass
 * (PEFT detaches it, following section 4.3 of the paper).
 *
 * <p>Added to the base output {@code y} as PEFT's {@code DoraLinearVariant.forward} does:
 * {@code (m/‖·‖ − 1) · x·W + (m/‖·‖) · s · x·A·B}, with {@code x·W} recomputed from the weight (the
 * layer's bias, if any, is unknown to peft4j) — the price of DoRA is that extra product. {@code m [out]}
 * starts at the norms of {@code W + s·A·B}, so the model starts unchanged.
 */
final class DoraMagnitude {

    private final SDVariable magnitude;
    private final INDArray eagerMagnitude;
    private INDArray normAtMerge;

    private DoraMagnitude(SDVariable magnitude, INDArray eagerMagnitude) {
        this.magnitude = magnitude;
        this.eagerMagnitude = eagerMagnitude;
    }

    /** A magnitude variable {@code name} of {@code sameDiff} starting at the weight norms; eager if {@code sameDiff} is null. */
    static DoraMagnitude start(SameDiff sameDiff, String name, INDArray weight, WeightLayout layout, LoraWeights lora) {
        INDArray norms = norms(weight, layout, lora, weight.dataType().isFPType() ? weight.dataType() : DataType.FLOAT);
        return sameDiff == null ? new DoraMagnitude(null, norms) : new DoraMagnitude(sameDiff.var(name, norms), null);
    }

    /** {@code ‖W + s·A·B‖} per output feature, {@code [out]}, computed in at least fp32. */
    static INDArray norms(INDArray weight, WeightLayout layout, LoraWeights lora, DataType dtype) {
        DataType compute = weight.dataType() == DataType.DOUBLE ? DataType.DOUBLE : DataType.FLOAT;
        INDArray combined = weight.castTo(compute).add(LoraMerge.delta(lora, layout, compute));
        return combined.norm2(layout == WeightLayout.IN_OUT ? 0 : 1).castTo(dtype);
    }

    /** The magnitude now: the variable's array or the eager array. */
    INDArray array() {
        return eagerMagnitude != null ? eagerMagnitude : magnitude.getArr();
    }

    String variableName() {
        return magnitude == null ? null : magnitude.name();
    }

    /**
     * The DoRA term for {@code rows [N, in]} (dropout already applied), before the branch's on/off gate:
     * {@code f · (rows·W + s·rows·A·B) − rows·W} with {@code f = m / stopGradient(‖W + s·A·B‖)}.
     */
    SDVariable graphDelta(SDVariable rows, SDVariable weight, WeightLayout layout, SDVariable a, SDVariable b, double scaling) {
        SameDiff sd = rows.getSameDiff();
        SDVariable deltaWeight = a.mmul(b).mul(scaling);
        SDVariable weightInOut = layout == WeightLayout.IN_OUT ? weight : weight.permute(1, 0);
        SDVariable norm = new StopGradient(sd, weightInOut.add(deltaWeight).norm2(0)).outputVariable();
        SDVariable factor = magnitude.div(norm);
        SDVariable baseRows = layout == WeightLayout.IN_OUT ? rows.mmul(weight) : sd.mmul(rows, weight, false, true, false);
        SDVariable loraRows = rows.mmul(a).mmul(b).mul(scaling);
        return baseRows.add(loraRows).mul(factor).sub(baseRows);
    }

    /** The same term computed eagerly for {@code rows [N, in]}. */
    INDArray eagerDelta(INDArray rows, INDArray weight, WeightLayout layout, LoraWeights lora) {
        INDArray factor = eagerMagnitude.div(norms(weight, layout, lora, eagerMagnitude.dataType()));
        INDArray weightInOut = layout == WeightLayout.IN_OUT ? weight : weight.transpose();
        INDArray baseRows = rows.mmul(weightInOut);
        INDArray loraRows = rows.mmul(lora.a()).mmul(lora.b()).muli(lora.scaling());
        return baseRows.add(loraRows).muliRowVector(factor).subi(baseRows);
    }

    /**
     * {@code W ← (W + s·A·B) · diag(m / ‖W + s·A·B‖)}, remembering the norm so that {@link #unmerge} can
     * divide by the same factor (PEFT caches it the same way); the weight is written only if finite.
     */
    void merge(INDArray weight, WeightLayout layout, LoraWeights lora, String weightName) {
        DataType compute = weight.dataType() == DataType.DOUBLE ? DataType.DOUBLE : DataType.FLOAT;
        INDArray norm = norms(weight, layout, lora, compute);
        INDArray factor = array().castTo(compute).div(norm);
        INDArray merged = weight.castTo(compute).add(LoraMerge.delta(lora, layout, compute));
        scale(merged, factor, layout, false);
        write(weight, merged, weightName, "merge");
        normAtMerge = norm;
    }

    /** {@code W ← W / f − s·A·B} with the factor {@code f} of the last merge. */
    void unmerge(INDArray weight, WeightLayout layout, LoraWeights lora, String weightName) {
        DataType compute = weight.dataType() == DataType.DOUBLE ? DataType.DOUBLE : DataType.FLOAT;
        INDArray factor = array().castTo(compute).div(normAtMerge);
        INDArray unmerged = weight.castTo(compute).dup();
        scale(unmerged, factor, layout, true);
        unmerged.subi(LoraMerge.delta(lora, layout, compute));
        write(weight, unmerged, weightName, "unmerge");
        normAtMerge = null;
    }

    private static void scale(INDArray matrix, INDArray perOutput, WeightLayout layout, boolean divide) {
        if (layout == WeightLayout.IN_OUT) {
            if (divide) {
                matrix.diviRowVector(perOutput);
            } else {
                matrix.muliRowVector(perOutput);
            }
        } else {
            INDArray column = perOutput.reshape(perOutput.length(), 1);
            if (divide) {
                matrix.diviColumnVector(column);
            } else {
                matrix.muliColumnVector(column);
            }
        }
    }

    private static void write(INDArray weight, INDArray result, String weightName, String action) {
        if (result.isNaN().any() || result.isInfinite().any()) {
            throw new PeftException("Refusing to " + action + " DoRA into " + weightName + ": the result contains NaN or Inf "
                    + "(a magnitude or the adapter weights have diverged, or a weight norm is zero); the weight was left unchanged");
        }
        weight.assign(result.castTo(weight.dataType()));
    }
}
