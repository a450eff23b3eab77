package io.peft4j.runtime.internal;

import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Kernels that compute some of a replayed step's op calls in place of libnd4j's, bound once to the
 * call's buffers ({@link RecordedStep}), and the ops of eager passes in an
 * {@link io.peft4j.runtime.EagerSession}, bound to the arrays a call passes
 * ({@link io.peft4j.runtime.KeyValueCache} for a decoder's cache).
 *
 * <p>On the CPU, libnd4j's elementwise and transcendental kernels run 3–7× slower than PyTorch's on
 * the same shapes (BENCHMARKS.md), and they dominate a step once the GEMMs are counted out. peft4j's
 * own, written with the JDK's Vector API ({@code io.peft4j.runtime.internal.vector}), replace them
 * for the ops and shapes they cover; every other call runs in libnd4j as recorded. The Vector API is
 * an incubator module in JDK 17, so they are used only when the JVM was started with
 * {@code --add-modules jdk.incubator.vector}, on ND4J's CPU backend, and unless the system property
 * {@value #PROPERTY} is {@code false} when a step is recorded or a session created.
 */
public interface ReplayKernels {
    /** System property that turns peft4j's kernels off ({@code -Dpeft4j.vectorKernels=false}). */
    String PROPERTY = "peft4j.vectorKernels";
    /**
     * System property that keeps every call on its own kernel, without the fused groups of
     * {@link ExactGelu}, {@link WrittenOutLayerNorm}, {@link ScaledDotProductAttention}, {@link AttentionGradient} and {@link ProductSum}
     * ({@code -Dpeft4j.fusedKernels=false}); read when a step is recorded.
     */
    String FUSION_PROPERTY = "peft4j.fusedKernels";
    /**
     * System property that keeps matrix products of arrays of rank 3 or more (attention's) in
     * libnd4j, and with them the fused attention, and matrix products with a short side (LoRA's) in
     * BLAS ({@code -Dpeft4j.productKernels=false}); read when a call is bound.
     */
    String PRODUCT_PROPERTY = "peft4j.productKernels";
    /**
     * System property that keeps Adam's parameter updates in libnd4j ({@code -Dpeft4j.optimizerKernels=false});
     * read when a step is recorded.
     */
    String OPTIMIZER_PROPERTY = "peft4j.optimizerKernels";
    /** The module that has to be in the JVM's boot layer. */
    String MODULE = "jdk.incubator.vector";

    /** Computes nothing: every call runs in libnd4j. */
    ReplayKernels NONE = (op, inputs, outputs, iArgs, tArgs, bArgs) -> null;

    /**
     * A kernel that computes {@code op} on {@code inputs} into {@code outputs} with the recorded
     * arguments, bound to those arrays; {@code null} when this library does not cover the call.
     */
    Runnable kernelFor(DifferentialFunction op, List<INDArray> inputs, INDArray[] outputs, long[] iArgs, double[] tArgs, boolean[] bArgs);

    /**
     * BERT's written-out exact GELU of {@code x} in one pass ({@link ExactGelu}), writing the
     * {@code parts} given (each {@code x}'s shape); {@code null} when not covered.
     */
    default Runnable exactGelu(INDArray x, ExactGelu.Scalars scalars, Map<ExactGelu.Part, INDArray> parts) {
        return null;
    }

    /**
     * The gradient of {@link #exactGelu} with respect to {@code x}, from the output's {@code gradient},
     * the forward pass's {@code half}, {@code onePlusErf} and {@code gaussian} parts and the
     * {@code coefficient} array of the derivative of erf, in one pass into {@code result} (all one
     * shape); {@code null} when not covered.
     */
    default Runnable exactGeluGradient(INDArray gradient, INDArray half, INDArray onePlusErf, INDArray gaussian, INDArray coefficient,
                                       INDArray result, ExactGelu.Scalars scalars) {
        return null;
    }

    /**
     * A LayerNorm written out op by op ({@link WrittenOutLayerNorm}) in one pass over the rows of
     * {@code input [.., d]}: {@code (x − mean) / √(variance + epsilon) · gain + bias} with {@code gain}
     * and {@code bias} {@code [d]}; for {@link WrittenOutLayerNorm.Stage#STATISTICS} up to the shifted
     * variance only (no gain, no bias), for {@link WrittenOutLayerNorm.Stage#NORMALISATION} from the
     * centred values ({@code input}) and the {@code shifted} variance ({@code [.., 1]}). Writes the
     * {@code parts} given (per element {@code input}'s shape, per row {@code [.., 1]}); {@code null} when
     * not covered.
     */
    default Runnable writtenOutLayerNorm(WrittenOutLayerNorm.Stage stage, INDArray input, INDArray shifted, INDArray gain, INDArray bias,
                                         float epsilon, Map<WrittenOutLayerNorm.Part, INDArray> parts) {
        return null;
    }

    /**
     * Attention written out op by op ({@link ScaledDotProductAttention}) in one pass:
     * {@code output = softmax(Q · Kᵀ ∘ scale + mask) · V} from {@code operands}, writing the
     * intermediates in {@code parts} (each shaped as the scores {@code [.., m, T]}) and the
     * {@code output [.., m, e]}; {@code null} when not covered.
     */
    default Runnable attention(ScaledDotProductAttention.Operands operands, Map<ScaledDotProductAttention.Part, INDArray> parts,
                               INDArray output) {
        return null;
    }

    /**
     * The gradient of attention written out op by op ({@link AttentionGradient}) in one pass: from the
     * forward pass's operands and probabilities and the output's gradient, {@code queryGradient}
     * ({@code [.., m, d]}), {@code keyGradient} ({@code [.., T, d]}; {@code null}, with the operands'
     * query, when not wanted) and {@code valueGradient} ({@code [.., T, e]}); {@code null} when not covered.
     */
    default Runnable attentionGradient(AttentionGradient.Operands operands, INDArray queryGradient, INDArray keyGradient,
                                       INDArray valueGradient) {
        return null;
    }

    /**
     * A matrix product with a short side added to a value of its shape ({@link ProductSum}) in one
     * pass: for {@code matmul(x, y)}, {@code sum = addend + op(x) · op(y)}; for
     * {@code matmul_bp(x, y, g)}, {@code sum = addend + dx} with {@code dx} the gradient of
     * {@code x}, and {@code otherGradient} the gradient of {@code y}. {@code product} is the recorded
     * op, {@code inputs} its operands; {@code addend} and {@code sum} have the product's (or
     * {@code x}'s) number of elements, contiguous. {@code null} when not covered.
     */
    default Runnable productSum(DifferentialFunction product, List<INDArray> inputs, long[] iArgs, double[] tArgs, INDArray addend,
                                INDArray sum, INDArray otherGradient) {
        return null;
    }

    /**
     * A kernel over a key/value cache whose extent changes from call to call: it is bound to the
     * cache's arrays once and told the position at each call.
     */
    interface CacheKernel {
        /** Runs over the cache's first {@code position} rows ({@link #cacheAttention}) or from row {@code position} on ({@link #cacheWriter}). */
        void run(int position);
    }

    /**
     * One query's attention over the first rows of a key/value cache, heads split along the features:
     * per head, {@code softmax(q · kᵀ / √(d / heads)) · v} (the scaling only when {@code scaled}) into
     * {@code output}. Shapes: {@code query} and {@code output} {@code [1, d]}, {@code keys} and
     * {@code values} {@code [capacity, d]}. {@code null} when not covered.
     */
    default CacheKernel cacheAttention(INDArray query, INDArray keys, INDArray values, INDArray output, int heads, boolean scaled) {
        return null;
    }

    /** Copies {@code rows [m, d]} into {@code cache [capacity, d]} from the row given at each call; {@code null} when not covered. */
    default CacheKernel cacheWriter(INDArray rows, INDArray cache) {
        return null;
    }

    /**
     * An optimizer's step for one parameter, bound to the parameter, its gradient and its state:
     * {@link #update} turns the gradient into the update (as the updater's {@code applyUpdater}
     * does), {@link #step} applies it to the parameter (as {@code parameter.subi(update)} does).
     */
    interface ParameterStep {
        /**
         * The update into the gradient's array, the optimizer's state advanced, for these hyper-parameters
         * and iteration; returns whether every value of the update is finite.
         */
        boolean update(double learningRate, double beta1, double beta2, double epsilon, int iteration);

        /** {@code parameter ← parameter − update}. */
        void step();
    }

    /**
     * Adam's step ({@code org.nd4j.linalg.learning.AdamUpdater}) for {@code parameter} with its
     * {@code gradient} and moments {@code m} and {@code v} (all of one length), computing what
     * libnd4j's {@code adam_updater} and the subtraction compute; {@code null} when not covered.
     */
    default ParameterStep adam(INDArray parameter, INDArray gradient, INDArray m, INDArray v) {
        return null;
    }

    /** The kernels this JVM can use: peft4j's when available and not switched off (see the class comment), else {@link #NONE}. */
    static ReplayKernels forThisProcess() {
        return ReplayKernelChoice.kernels();
    }

    /** Why {@link #forThisProcess()} is {@link #NONE}, as a sentence for the user; {@code null} when it is not. */
    static String unavailableReason() {
        return ReplayKernelChoice.reason();
    }
}
