package io.peft4j.runtime.spi;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.PeftException;
import java.util.Arrays;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Folds a LoRA delta into a weight matrix and takes it out again.
 *
 * <p>Called by the generated {@code <Layer>_LoRA.merge/unmerge} methods and by
 * {@code PeftModel.merge()}. The delta {@code s · A · B} ({@code [in, out]}, transposed for
 * {@link WeightLayout#OUT_IN}) is computed in at least fp32 whatever the weight's dtype, and the
 * weight is written only if every element of the result is finite (Hugging Face PEFT's
 * {@code safe_merge}); otherwise it is left untouched and a {@link PeftException} says so.
 */
public final class LoraMerge {

    private LoraMerge() {
    }

    /** {@code W += s · A · B}. */
    public static void merge(Object weight, LoraWeights lora, WeightLayout layout, String weightName) {
        apply(weight, lora, layout, weightName, +1);
    }

    /** {@code W -= s · A · B}: the exact inverse operation of {@link #merge}, up to rounding. */
    public static void unmerge(Object weight, LoraWeights lora, WeightLayout layout, String weightName) {
        apply(weight, lora, layout, weightName, -1);
    }

    /** The delta {@code s · A · B} in the weight's own layout and in the compute dtype. */
    public static INDArray delta(LoraWeights lora, WeightLayout layout, DataType computeType) {
        INDArray delta = lora.a().castTo(computeType).mmul(lora.b().castTo(computeType)).muli(lora.scaling());
        return layout == WeightLayout.OUT_IN ? delta.transpose() : delta;
    }

    /** The array behind a weight field's value, an {@code SDVariable} or an {@code INDArray}. */
    public static INDArray arrayOf(Object weight, String weightName) {
        if (weight instanceof INDArray array) {
            return array;
        }
        if (weight instanceof SDVariable variable) {
            INDArray array = variable.getArr();
            if (array == null) {
                throw new PeftException("Weight " + weightName + " (SameDiff variable '" + variable.name()
                        + "') has no array yet: create it with sd.var(name, array) or an initializer before attaching PEFT");
            }
            return array;
        }
        throw new PeftException("Weight " + weightName + " is "
                + (weight == null ? "null" : "a " + weight.getClass().getName())
                + ": a @Weight field must hold an SDVariable or an INDArray");
    }

    private static void apply(Object weight, LoraWeights lora, WeightLayout layout, String weightName, int sign) {
        INDArray w = arrayOf(weight, weightName);
        long[] expected = layout == WeightLayout.OUT_IN
                ? new long[] {lora.out(), lora.in()} : new long[] {lora.in(), lora.out()};
        if (!Arrays.equals(w.shape(), expected)) {
            throw new PeftException("Cannot merge LoRA into " + weightName + ": the weight is "
                    + Arrays.toString(w.shape()) + " but A·B is " + Arrays.toString(expected) + " in " + layout + " layout");
        }
        DataType compute = w.dataType() == DataType.DOUBLE ? DataType.DOUBLE : DataType.FLOAT;
        // A fresh array: the weight must stay untouched until the result is known to be finite.
        INDArray result = w.dataType() == compute ? w.dup() : w.castTo(compute);
        result.addi(delta(lora, layout, compute).muli(sign));
        if (result.isNaN().any() || result.isInfinite().any()) {
            throw new PeftException("Refusing to " + (sign > 0 ? "merge" : "unmerge") + " LoRA into " + weightName
                    + ": the result contains NaN or Inf (the adapter weights have diverged); the weight was left unchanged");
        }
        w.assign(result.castTo(w.dataType()));
    }
}
