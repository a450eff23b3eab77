package io.peft4j.runtime.internal;

import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashSet;
import java.util.Map;
import java.util.Set;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The shapes that named variables of a SameDiff graph take for one batch, for the gradient rewrites
 * that depend on how operands broadcast.
 *
 * <p>SameDiff M2.1 does not record activation shapes while a graph is built (a value computed from a
 * placeholder with an unknown dimension has none), so parameters' and constants' shapes come from their
 * arrays, placeholders' from the batch, and computed values' from one forward pass over the batch.
 */
final class ActivationShapes {
    private static final System.Logger LOG = System.getLogger(ActivationShapes.class.getName());

    private ActivationShapes() {
    }

    /** The shapes of the two operands (inputs 0 and 1) of each of {@code ops}, as {@link #of}. */
    static Map<String, long[]> ofOperands(SameDiff sameDiff, Collection<SameDiffOp> ops, Map<String, INDArray> batch) {
        Set<String> operands = new LinkedHashSet<>();
        ops.forEach(op -> operands.addAll(op.getInputsToOp().subList(0, 2)));
        return of(sameDiff, operands, batch);
    }

    /**
     * The shapes of {@code names} in {@code sameDiff} for {@code batch} (placeholder name to array).
     * Names it cannot tell are missing from the result: not variables of the forward graph, placeholders
     * the batch does not feed, or every computed value when the forward pass fails.
     */
    static Map<String, long[]> of(SameDiff sameDiff, Collection<String> names, Map<String, INDArray> batch) {
        Map<String, long[]> shapes = new HashMap<>();
        Set<String> computed = new LinkedHashSet<>();
        for (String name : names) {
            SDVariable variable = sameDiff.hasVariable(name) ? sameDiff.getVariable(name) : null;
            if (variable == null) {
                continue;
            }
            VariableType kind = variable.getVariableType();
            if (kind == VariableType.VARIABLE || kind == VariableType.CONSTANT) {
                shapes.put(name, variable.getArr().shape());
            } else if (kind == VariableType.PLACEHOLDER && batch.containsKey(name)) {
                shapes.put(name, batch.get(name).shape());
            } else if (kind == VariableType.ARRAY) {
                computed.add(name);
            }
        }
        if (!computed.isEmpty()) {
            try {
                sameDiff.output(batch, computed.toArray(String[]::new)).forEach((name, array) -> shapes.put(name, array.shape()));
            } catch (RuntimeException e) {
                // Without shapes the rewrites that need them leave their ops alone: training stays correct, only slower.
                LOG.log(System.Logger.Level.DEBUG, "No activation shapes from the first batch ({0}); gradients that depend"
                        + " on broadcasting are computed as SameDiff built them", e.getMessage());
            }
        }
        return shapes;
    }
}
