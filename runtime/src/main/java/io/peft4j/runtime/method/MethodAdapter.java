package io.peft4j.runtime.method;

import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.CheckpointOptions;
import io.peft4j.runtime.checkpoint.SavedAdapter;
import java.util.List;

/**
 * One method's part of one named adapter: its modules on the model's layers, their parameters, and
 * how they switch, train, merge, save and load. {@code PeftModel} drives every method through this
 * interface alone.
 */
public interface MethodAdapter {

    PeftMethod method();

    /** The name of the adapter this part belongs to. */
    String adapterName();

    /** The paths of the layers this part adapts, in model order. */
    List<String> layers();

    /** The names of the graph variables it owns: trainable while its adapter is trained. */
    List<String> variableNames();

    /** Its number of parameters (those of modules created lazily count once they exist). */
    long parameterCount();

    /** The layers whose forward method has not yet joined a graph with this part in it. */
    List<String> unwiredLayers();

    /**
     * Switches the part's contribution on or off in every graph built with it (and in later forward
     * calls), by changing graph constants, never the graph.
     */
    void setActive(boolean active);

    /** Training-only behaviour (dropout) on for the duration of training, off otherwise. */
    void setTraining(boolean training);

    /** Takes the part out of the model for good: later forward calls no longer see it, built graphs see it off. */
    void remove();

    /** Stops adding the part to later forward calls; graphs already built keep it as it is now. */
    void detach();

    /** Whether {@link #merge()} can fold this part into the base weights. */
    default boolean mergeable() {
        return false;
    }

    /** Folds the part into the base weights; its contribution is switched off meanwhile. All or nothing. */
    default void merge() {
        throw new PeftException(method().name() + " adapters cannot be merged into the base weights (adapter '" + adapterName()
                + "'): only LoRA is a weight delta; unload or keep the adapter instead");
    }

    /** Subtracts exactly what {@link #merge()} added and switches the part back on. */
    default void unmerge() {
        throw new PeftException(method().name() + " adapters cannot be merged or unmerged (adapter '" + adapterName() + "')");
    }

    /** Whether the part is merged into the base weights now. */
    default boolean merged() {
        return false;
    }

    /** Whether mixed-batch graphs can route rows to this part (methods that change sequence lengths cannot). */
    default boolean supportsMixedBatches() {
        return false;
    }

    /** Its tensors and config entries, for saving. */
    MethodState state(CheckpointKeys keys);

    /** Its tensors and config entries as {@code options} ask (a conversion some methods offer); {@link #state(CheckpointKeys)} by default. */
    default MethodState state(CheckpointOptions options) {
        if (options.asPlainLora()) {
            throw new PeftException(method().name() + " adapter '" + adapterName() + "' cannot be converted to a plain LoRA: "
                    + "withConversionToPlainLora applies to LoRA adapters initialised with PiSSA or OLoRA");
        }
        return state(options.keys());
    }

    /**
     * Checks {@code saved} against this part (keys, shapes, ranks) without writing anything and returns
     * the action that writes its tensors into the part; throws a {@code CheckpointException} naming the
     * file and the problem otherwise.
     */
    Runnable prepareLoad(SavedAdapter saved);
}
