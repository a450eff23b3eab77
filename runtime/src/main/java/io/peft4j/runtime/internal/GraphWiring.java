package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.autodiff.samediff.internal.Variable;

/**
 * Which op produces and which ops read each variable of one SameDiff graph, and moving readers from
 * one variable to another in place.
 *
 * <p>SameDiff records every edge twice: in the reading op's input list and in the variable's list of
 * readers (each reading op once, however often it reads the variable). A rewiring here keeps both in
 * step. Nothing is deleted: a variable whose readers all moved away keeps its producer, so it can
 * still be asked for by name, and SameDiff, which runs only the ops that the requested outputs need,
 * no longer runs it in training.
 */
final class GraphWiring {
    private final Map<String, SameDiffOp> ops;
    private final Map<String, Variable> variables;

    GraphWiring(SameDiff sameDiff) {
        this.ops = sameDiff.getOps();
        this.variables = sameDiff.getVariables();
    }

    /** The op that computes {@code variable}, or {@code null} for placeholders, parameters and constants. */
    SameDiffOp producer(String variable) {
        Variable known = variables.get(variable);
        String op = known == null ? null : known.getOutputOfOp();
        return op == null ? null : ops.get(op);
    }

    /** The ops that read {@code variable}, as a copy. */
    List<SameDiffOp> readers(String variable) {
        Variable known = variables.get(variable);
        List<SameDiffOp> readers = new ArrayList<>();
        if (known != null && known.getInputsForOp() != null) {
            for (String op : known.getInputsForOp()) {
                readers.add(ops.get(op));
            }
        }
        return readers;
    }

    /** Makes every op that reads {@code from} read {@code to} instead; returns how many ops moved. */
    int moveReaders(String from, String to) {
        List<SameDiffOp> readers = readers(from);
        for (SameDiffOp reader : readers) {
            List<String> inputs = new ArrayList<>(reader.getInputsToOp());
            inputs.replaceAll(input -> input.equals(from) ? to : input);
            reader.setInputsToOp(inputs);
            addReader(to, reader.getName());
        }
        variables.get(from).setInputsForOp(new ArrayList<>());
        return readers.size();
    }

    /** Makes {@code op} read {@code to} as its input number {@code index}. */
    void replaceInput(SameDiffOp op, int index, String to) {
        List<String> inputs = new ArrayList<>(op.getInputsToOp());
        String from = inputs.set(index, to);
        op.setInputsToOp(inputs);
        if (!inputs.contains(from)) {
            variables.get(from).getInputsForOp().remove(op.getName());
        }
        addReader(to, op.getName());
    }

    private void addReader(String variable, String op) {
        Variable target = variables.get(variable);
        if (target.getInputsForOp() == null) {
            target.setInputsForOp(new ArrayList<>());
        }
        if (!target.getInputsForOp().contains(op)) {
            target.getInputsForOp().add(op);
        }
    }
}
