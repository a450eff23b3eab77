package io.peft4j.runtime;

import io.peft4j.runtime.internal.GraphFreezer;
import java.util.function.Predicate;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;

/**
 * Freezing for the baselines PEFT is compared with (frozen features, head only, all layers):
 * every trainable variable whose name {@code keepTrainable} rejects becomes a constant.
 */
public final class Freezer {

    private Freezer() {
    }

    /** Freezes the rejected variables of {@code sameDiff}; returns how many parameters that froze. */
    public static long freezeAllExcept(SameDiff sameDiff, Predicate<String> keepTrainable) {
        java.util.Set<String> keep = new java.util.HashSet<>();
        sameDiff.variables().stream().map(SDVariable::name).filter(keepTrainable).forEach(keep::add);
        return GraphFreezer.freezeAllExcept(sameDiff, keep).stream().mapToLong(variable -> variable.getArr().length()).sum();
    }

    /** The number of elements in {@code sameDiff}'s trainable variables. */
    public static long trainableParameters(SameDiff sameDiff) {
        return GraphFreezer.trainableParameters(sameDiff);
    }
}
