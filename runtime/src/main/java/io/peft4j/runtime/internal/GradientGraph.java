package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.autodiff.samediff.internal.Variable;

/**
 * A SameDiff graph's gradient function, which the gradient pruners edit: which gradient outputs
 * training reads, and replacing a backward op by a cheaper one that computes only the one it needs.
 *
 * <p>SameDiff builds the gradient function ({@code sameDiff.getFunction("grad")}) as a copy of the
 * forward graph plus the backward ops, and reuses it for every training step once it exists. A
 * gradient output is "used" when another op reads it, when it is the gradient of a trainable
 * variable, or when it is a loss.
 */
final class GradientGraph {
    private static final String GRADIENT_FUNCTION = "grad";

    private final SameDiff gradients;
    private final Set<String> required;

    private GradientGraph(SameDiff gradients, Set<String> required) {
        this.gradients = gradients;
        this.required = required;
    }

    /** {@code sameDiff}'s gradient function, built first if it has none yet. */
    static GradientGraph of(SameDiff sameDiff) {
        if (sameDiff.getFunction(GRADIENT_FUNCTION) == null) {
            sameDiff.createGradFunction();
        }
        SameDiff gradients = sameDiff.getFunction(GRADIENT_FUNCTION);
        Set<String> required = new HashSet<>(sameDiff.getLossVariables());
        for (Variable variable : gradients.getVariables().values()) {
            if (variable.getVariable().getVariableType() == VariableType.VARIABLE && variable.getGradient() != null) {
                required.add(variable.getGradient().name());
            }
        }
        return new GradientGraph(gradients, required);
    }

    SameDiff sameDiff() {
        return gradients;
    }

    /** The variables a training step asks for: the losses and the trainable variables' gradients. */
    Set<String> requiredOutputs() {
        return Set.copyOf(required);
    }

    /** A snapshot of the ops, safe to iterate while {@link #replace} edits the graph. */
    List<SameDiffOp> ops() {
        return new ArrayList<>(gradients.getOps().values());
    }

    boolean isUsed(String variableName) {
        if (required.contains(variableName)) {
            return true;
        }
        Variable variable = gradients.getVariables().get(variableName);
        return variable == null || !isEmpty(variable.getInputsForOp()) || !isEmpty(variable.getControlDepsForOp())
                || !isEmpty(variable.getControlDepsForVar());
    }

    /**
     * Makes {@code op} compute {@code replacement} of {@code inputs} into its output {@code kept},
     * and removes its other output {@code dropped}, which nothing reads.
     */
    void replace(SameDiffOp op, DifferentialFunction replacement, List<String> inputs, String kept, String dropped) {
        replacement.setSameDiff(gradients);
        replacement.setOwnName(op.getName());
        for (String input : op.getInputsToOp()) {
            gradients.getVariables().get(input).getInputsForOp().remove(op.getName());
        }
        for (String input : inputs) {
            Variable variable = gradients.getVariables().get(input);
            if (variable.getInputsForOp() == null) {
                variable.setInputsForOp(new ArrayList<>());
            }
            variable.getInputsForOp().add(op.getName());
        }
        op.setOp(replacement);
        op.setInputsToOp(new ArrayList<>(inputs));
        op.setOutputsOfOp(new ArrayList<>(List.of(kept)));
        gradients.getVariables().remove(dropped);
    }

    /**
     * Makes {@code replacement} the gradient of every variable of {@code sameDiff} (the forward graph or
     * its gradient function) whose gradient was {@code gradient}: training reads a trainable variable's
     * gradient through that link, in both.
     */
    static void repointGradient(SameDiff sameDiff, String gradient, SDVariable replacement) {
        for (Variable variable : sameDiff.getVariables().values()) {
            if (variable.getGradient() != null && variable.getGradient().name().equals(gradient)) {
                variable.setGradient(replacement);
            }
        }
    }

    private static boolean isEmpty(List<String> list) {
        return list == null || list.isEmpty();
    }
}
