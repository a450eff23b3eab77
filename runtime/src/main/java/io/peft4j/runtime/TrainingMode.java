package io.peft4j.runtime;

import io.peft4j.runtime.internal.ElementwiseGradientPruner;
import io.peft4j.runtime.internal.MatMulGradientPruner;
import io.peft4j.runtime.internal.Nd4jOutput;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.autodiff.samediff.api.OutAndGrad;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A model made ready for a training loop of one's own, such as peft4j-spark's data-parallel one: the
 * active adapters and their trained modules are the graph's only trainable variables, dropout is on,
 * and {@link #lossAndGradients} computes one step's loss and gradients without updating anything.
 * Closing it switches dropout off again. Obtain it from {@link PeftModel#trainingMode()} after the
 * graph (forward pass and loss) is built.
 *
 * <p>Gradients have the shapes of their variables, e.g. LoRA's {@code A [in, r]} and {@code B [r, out]}.
 */
public final class TrainingMode implements AutoCloseable {

    private final SameDiff sameDiff;
    private final List<String> trainable;
    private final Runnable end;
    private boolean prunedGradients;
    private boolean open = true;

    TrainingMode(SameDiff sameDiff, Runnable end) {
        this.sameDiff = sameDiff;
        this.end = end;
        List<String> names = new ArrayList<>();
        for (SDVariable variable : sameDiff.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                names.add(variable.name());
            }
        }
        this.trainable = Collections.unmodifiableList(names);
        if (sameDiff.getLossVariables().isEmpty()) {
            throw new PeftException("The graph has no loss variable: build the loss and call sameDiff.setLossVariables(loss) "
                    + "before trainingMode()");
        }
    }

    /** The trainable variables' names, in the graph's order (the same on every JVM that builds the same graph). */
    public List<String> trainableVariables() {
        return trainable;
    }

    public SameDiff sameDiff() {
        return sameDiff;
    }

    /**
     * One step's loss (the sum of the graph's loss variables, without the regularization term that
     * {@code train(...)} adds to the loss it reports) and the trainable variables' gradients.
     */
    public LossAndGradients lossAndGradients(Map<String, INDArray> placeholders) {
        if (!open) {
            throw new PeftException("This TrainingMode is closed: call peft.trainingMode() again");
        }
        // ND4J prints a line per op while it builds the gradient graph, the first time only.
        OutAndGrad result = Nd4jOutput.quiet(() -> {
            if (!prunedGradients && !Boolean.getBoolean(SameDiffTrainer.COMPUTE_UNUSED_GRADIENTS)) {
                MatMulGradientPruner.prune(sameDiff);
                ElementwiseGradientPruner.prune(sameDiff, () -> placeholders);
                prunedGradients = true;
            }
            return sameDiff.calculateGradientsAndOutputs(placeholders, sameDiff.getLossVariables(), trainable);
        });
        double loss = 0;
        for (String name : sameDiff.getLossVariables()) {
            loss += result.getOutputs().get(name).sumNumber().doubleValue();
        }
        return new LossAndGradients(loss, result.getGradients());
    }

    /** Switches dropout off again; the variables stay as trained. */
    @Override
    public void close() {
        if (open) {
            open = false;
            end.run();
        }
    }

    /**
     * @param loss      the step's total loss
     * @param gradients gradient by trainable variable name, each of its variable's shape
     */
    public record LossAndGradients(double loss, Map<String, INDArray> gradients) {
    }
}
