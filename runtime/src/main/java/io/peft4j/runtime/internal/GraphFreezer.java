package io.peft4j.runtime.internal;

import java.util.ArrayList;
import java.util.List;
import java.util.Set;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;

/**
 * Freezes a SameDiff graph's parameters by turning them into constants: SameDiff neither computes
 * updates nor keeps optimizer state for constants, so the frozen weights stay bit-identical.
 */
public final class GraphFreezer {

    private GraphFreezer() {
    }

    /** Converts every trainable variable not named in {@code keepTrainable} to a constant; returns those frozen now. */
    public static List<SDVariable> freezeAllExcept(SameDiff sameDiff, Set<String> keepTrainable) {
        List<SDVariable> toFreeze = new ArrayList<>();
        for (SDVariable variable : sameDiff.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE && !keepTrainable.contains(variable.name())) {
                toFreeze.add(variable);
            }
        }
        if (!toFreeze.isEmpty()) {
            sameDiff.convertToConstants(toFreeze);
        }
        return toFreeze;
    }

    /** The number of elements in the graph's trainable variables. */
    public static long trainableParameters(SameDiff sameDiff) {
        long count = 0;
        for (SDVariable variable : sameDiff.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                count += variable.getArr().length();
            }
        }
        return count;
    }
}
