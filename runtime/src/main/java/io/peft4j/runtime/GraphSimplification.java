package io.peft4j.runtime;

import java.util.ArrayList;
import java.util.List;
import java.util.Locale;

/**
 * What peft4j's simplification of a training graph did before the first step (see
 * {@link SameDiffTrainer#SIMPLIFY_GRAPHS}). The structural rewrites leave every value bit for bit as
 * it was; the softmax rewrite measured bit for bit too, and the GELU and division rewrites agree to
 * rounding. They let a step skip ops whose result another op already computes, or recompute from
 * what the forward pass has (a softmax, a sigmoid, a quotient) instead of from scratch.
 *
 * @param opsBefore              ops one training step ran before
 * @param opsAfter               ops one training step runs now
 * @param duplicatesMerged       shape ops ({@code shape_of}, {@code reshape}, {@code zeroslike}, ...) that
 *                               repeated another with the same inputs and arguments, whose readers now read the first
 * @param identitiesBypassed     {@code identity} ops whose readers now read the identity's input
 * @param zeroSumsBypassed       gradient sums {@code g + zeroslike(x)} (SameDiff's zero gradient for an input
 *                               of a shape op) whose readers now read {@code g}
 * @param reshapeChainsShortened reshapes of a reshape that now reshape the original input
 * @param gelusFromOneSigmoid    ND4J {@code gelu} ops whose value and derivative now come from one sigmoid
 *                               (CPU only: one transcendental kernel instead of two; equal to rounding)
 * @param softmaxGradientsFromOutput {@code softmax_bp} ops replaced by products and a sum over the softmax's
 *                               output, which the forward part already computed
 * @param divisionGradientsFromOutput {@code divide_bp} ops of a broadcast division (a LayerNorm's by its
 *                               standard deviation) replaced by a division, a product, a sum and a negation
 *                               over the forward quotient (equal to rounding; needs the first batch's shapes)
 * @param crossEntropiesFromExponentials sparse softmax cross-entropies whose loss and gradient now come from one
 *                               exponential pass instead of libnd4j's loss op and its backward op, each a softmax
 *                               (equal to rounding; needs the first batch's shapes)
 * @param broadcastGradientsSummed {@code add_bp}, {@code subtract_bp} and {@code multiply_bp} ops of a broadcast
 *                               operand (a trainable bias or gain) replaced by element-wise ops and one sum (equal to
 *                               rounding; needs the first batch's shapes)
 * @param sumGradientsPassedOn {@code add_bp} ops of two operands of one shape (residual connections, LoRA's
 *                               branch) whose gradients' readers now read the incoming gradient instead of
 *                               libnd4j's two copies of it (needs the first batch's shapes)
 */
public record GraphSimplification(int opsBefore, int opsAfter, int duplicatesMerged, int identitiesBypassed,
                                  int zeroSumsBypassed, int reshapeChainsShortened, int gelusFromOneSigmoid,
                                  int softmaxGradientsFromOutput, int divisionGradientsFromOutput,
                                  int crossEntropiesFromExponentials, int broadcastGradientsSummed, int sumGradientsPassedOn) {

    /** No rewrite, for a graph of {@code ops} ops per step. */
    public static GraphSimplification none(int ops) {
        return new GraphSimplification(ops, ops, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0);
    }

    public boolean changedAnything() {
        return duplicatesMerged + identitiesBypassed + zeroSumsBypassed + reshapeChainsShortened + gelusFromOneSigmoid
                + softmaxGradientsFromOutput + divisionGradientsFromOutput + crossEntropiesFromExponentials
                + broadcastGradientsSummed + sumGradientsPassedOn > 0;
    }

    /** One line for people: the op counts and each kind of rewrite that happened. */
    public String describe() {
        List<String> rewrites = new ArrayList<>();
        count(rewrites, duplicatesMerged, "duplicate op", "duplicate ops", "merged");
        count(rewrites, identitiesBypassed, "identity", "identities", "bypassed");
        count(rewrites, zeroSumsBypassed, "sum with zeros", "sums with zeros", "bypassed");
        count(rewrites, reshapeChainsShortened, "reshape of a reshape", "reshapes of a reshape", "shortened");
        if (gelusFromOneSigmoid > 0) {
            rewrites.add("computed " + gelusFromOneSigmoid + (gelusFromOneSigmoid == 1 ? " GELU" : " GELUs") + " and derivatives from one sigmoid each");
        }
        if (softmaxGradientsFromOutput > 0) {
            rewrites.add("took " + softmaxGradientsFromOutput + (softmaxGradientsFromOutput == 1 ? " softmax gradient" : " softmax gradients")
                    + " from the softmax's output");
        }
        if (divisionGradientsFromOutput > 0) {
            rewrites.add("took " + divisionGradientsFromOutput + (divisionGradientsFromOutput == 1 ? " division gradient" : " division gradients")
                    + " from the quotient");
        }
        if (crossEntropiesFromExponentials > 0) {
            rewrites.add("computed " + crossEntropiesFromExponentials
                    + (crossEntropiesFromExponentials == 1 ? " cross-entropy and its gradient" : " cross-entropies and their gradients")
                    + " from one exponential pass");
        }
        if (broadcastGradientsSummed > 0) {
            rewrites.add("summed " + broadcastGradientsSummed + (broadcastGradientsSummed == 1 ? " broadcast operand's gradient" : " broadcast operands' gradients")
                    + " without libnd4j's backward op");
        }
        count(rewrites, sumGradientsPassedOn, "sum's gradient", "sums' gradients", "passed on");
        return String.format(Locale.ROOT, "%d -> %d ops per training step (%s)", opsBefore, opsAfter,
                rewrites.isEmpty() ? "nothing to simplify" : String.join(", ", rewrites));
    }

    private static void count(List<String> rewrites, int count, String one, String many, String verb) {
        if (count > 0) {
            rewrites.add(verb + " " + count + " " + (count == 1 ? one : many));
        }
    }
}
