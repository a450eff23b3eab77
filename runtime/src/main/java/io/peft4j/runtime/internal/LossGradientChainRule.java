package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.nd4j.autodiff.loss.LossReduce;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.autodiff.samediff.internal.Variable;
import org.nd4j.linalg.api.ops.impl.loss.AbsoluteDifferenceLoss;
import org.nd4j.linalg.api.ops.impl.loss.BaseLoss;
import org.nd4j.linalg.api.ops.impl.loss.HingeLoss;
import org.nd4j.linalg.api.ops.impl.loss.HuberLoss;
import org.nd4j.linalg.api.ops.impl.loss.LogLoss;
import org.nd4j.linalg.api.ops.impl.loss.LogPoissonLoss;
import org.nd4j.linalg.api.ops.impl.loss.MeanSquaredErrorLoss;
import org.nd4j.linalg.api.ops.impl.loss.SigmoidCrossEntropyLoss;
import org.nd4j.linalg.api.ops.impl.loss.SoftmaxCrossEntropyLoss;
import org.nd4j.linalg.api.ops.impl.loss.SparseSoftmaxCrossEntropyLossWithLogits;

/**
 * Applies the chain rule that ND4J 1.0.0-M2.1's loss ops leave out of their gradients.
 *
 * <p>Every loss op of {@code org.nd4j.linalg.api.ops.impl.loss} differentiates as if it were the
 * last op of the graph: its backward op ({@code *_loss_grad}) is built from the op's inputs alone and
 * never reads the gradient arriving at the loss's output. A loss that anything follows therefore gets
 * the wrong gradient: {@code sparseSoftmaxCrossEntropy(logits, labels).mean()} (the per-token loss of
 * every language model, which returns one value per label and must be reduced) yields
 * {@code softmax − onehot} for each token instead of that divided by the token count, so a batch of
 * 16 × 64 tokens steps 1,024 times too far with SGD; a weighted sum of losses ignores its weights.
 * Measured in M2.1 with {@code calculateGradients}: the logits' gradient is the same with and
 * without {@code .mul(3)} after each of twelve loss ops.
 *
 * <p>For each loss op whose output has a gradient in the gradient function, the backward op's
 * outputs are multiplied by that gradient {@code g}:
 * <ul>
 *   <li>a {@link BaseLoss} with a reduction ({@code g} is a scalar): every output (predictions',
 *       weights' and labels' gradients);</li>
 *   <li>{@code sparse_softmax_cross_entropy_loss_with_logits} ({@code g} has the labels' shape
 *       {@code [..., n]}, the logits {@code [..., n, classes]}): the logits' gradient, times {@code g}
 *       with a trailing axis of 1;</li>
 *   <li>{@code softmax_cross_entropy_loss} without reduction ({@code g} {@code [n, 1]}, predictions
 *       {@code [n, classes]}) and the element-wise losses without reduction (squared error, absolute
 *       difference, Huber, hinge, log, sigmoid cross-entropy, log-Poisson; {@code g} has the
 *       predictions' shape): the predictions' gradient, times {@code g}.</li>
 * </ul>
 * A loss op that is itself a graph loss and read by nothing else is left alone: its gradient is the
 * seed 1. The other unreduced losses (cosine distance, mean pairwise squared error, CTC) are left as
 * ND4J builds them. Applying it twice changes nothing more.
 */
public final class LossGradientChainRule {
    private static final String BACKWARD_PACKAGE = "org.nd4j.linalg.api.ops.impl.loss.bp";
    private static final String SUFFIX = "-times-upstream";
    private static final Set<Class<?>> SAME_RANK = Set.of(SoftmaxCrossEntropyLoss.class, MeanSquaredErrorLoss.class, AbsoluteDifferenceLoss.class,
            HuberLoss.class, HingeLoss.class, LogLoss.class, SigmoidCrossEntropyLoss.class, LogPoissonLoss.class);

    private final SameDiff forward;
    private final SameDiff graph;
    private final GraphWiring wiring;
    private final Set<String> required;
    private final List<String> corrected = new ArrayList<>();

    private LossGradientChainRule(SameDiff forward, GradientGraph gradients) {
        this.forward = forward;
        this.graph = gradients.sameDiff();
        this.wiring = new GraphWiring(graph);
        this.required = gradients.requiredOutputs();
    }

    /**
     * Builds {@code sameDiff}'s gradient function if it has none yet and corrects its loss gradients;
     * returns the names of the loss ops corrected (ND4J's op names, e.g.
     * {@code sparse_softmax_cross_entropy_loss_with_logits}), one entry per op.
     */
    public static List<String> apply(SameDiff sameDiff) {
        LossGradientChainRule rule = new LossGradientChainRule(sameDiff, GradientGraph.of(sameDiff));
        for (SameDiffOp op : List.copyOf(rule.graph.getOps().values())) {
            if (op.getOp().getClass().getName().startsWith(BACKWARD_PACKAGE + ".")) {
                rule.correct(op);
            }
        }
        return List.copyOf(rule.corrected);
    }

    private void correct(SameDiffOp backward) {
        SameDiffOp loss = forwardLoss(backward);
        if (loss == null) {
            return;
        }
        String output = loss.getOutputsOfOp().get(0);
        Variable lossOutput = graph.getVariables().get(output);
        SDVariable upstream = lossOutput == null ? null : lossOutput.getGradient();
        if (upstream == null || forward.getLossVariables().contains(output) && wiring.readers(output).isEmpty()) {
            return;
        }
        boolean changed = false;
        if (loss.getOp() instanceof BaseLoss reduced && reduced.getLossReduce() != LossReduce.NONE) {
            for (String gradient : backward.getOutputsOfOp()) {
                changed |= multiply(gradient, upstream);
            }
        } else if (loss.getOp() instanceof SparseSoftmaxCrossEntropyLossWithLogits) {
            changed = multiply(backward.getOutputsOfOp().get(0), graph.expandDims(upstream, -1));
        } else if (SAME_RANK.contains(loss.getOp().getClass())) {
            changed = multiply(backward.getOutputsOfOp().get(0), upstream);
        }
        if (changed) {
            corrected.add(loss.getOp().opName());
        }
    }

    /** The forward loss op that {@code backward} differentiates: the class without "Bp", on the same inputs. */
    private SameDiffOp forwardLoss(SameDiffOp backward) {
        String name = backward.getOp().getClass().getSimpleName();
        if (!name.endsWith("Bp") || backward.getInputsToOp().isEmpty()) {
            return null;
        }
        String forwardName = name.substring(0, name.length() - 2);
        for (SameDiffOp reader : wiring.readers(backward.getInputsToOp().get(0))) {
            if (reader != backward && reader.getOp().getClass().getSimpleName().equals(forwardName)
                    && reader.getInputsToOp().equals(backward.getInputsToOp()) && !reader.getOutputsOfOp().isEmpty()) {
                return reader;
            }
        }
        return null;
    }

    /**
     * Makes the readers of {@code gradient} read {@code gradient × factor}, and a trainable variable
     * whose gradient it is take the product as its gradient; false when nothing reads it or it is done.
     */
    private boolean multiply(String gradient, SDVariable factor) {
        String productName = productOf(gradient);
        boolean isRequired = required.contains(gradient);
        if (graph.hasVariable(productName) || !isRequired && wiring.readers(gradient).isEmpty()) {
            return false;
        }
        SDVariable product = graph.getVariable(gradient).mul(productName, factor);
        SameDiffOp productOp = wiring.producer(productName);
        wiring.moveReaders(gradient, productName);
        wiring.replaceInput(productOp, 0, gradient);
        if (isRequired) {
            GradientGraph.repointGradient(graph, gradient, product);
            GradientGraph.repointGradient(forward, gradient, product);
        }
        return true;
    }

    /** The name of {@code gradient × upstream}, the product that replaces a loss's backward output {@code gradient}. */
    static String productOf(String gradient) {
        return gradient + SUFFIX;
    }
}
