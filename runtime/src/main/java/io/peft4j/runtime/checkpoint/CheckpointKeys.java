package io.peft4j.runtime.checkpoint;

import java.util.function.UnaryOperator;

/**
 * How a checkpoint names what it stores: Hugging Face PEFT's {@code base_model.model.<module>.<param>}
 * keys, with peft4j layer paths mapped to the module names of the file (identity unless the user maps
 * them, e.g. to another framework's names), and whether LoRA layers are described to PEFT as GPT-2's
 * {@code Conv1D} ({@code fan_in_fan_out}).
 */
public final class CheckpointKeys {

    /** What PEFT puts in front of every module path of a non-prompt adapter. */
    public static final String PREFIX = "base_model.model.";

    private final UnaryOperator<String> layerNames;
    private final boolean fanInFanOut;

    public CheckpointKeys(UnaryOperator<String> layerNames, boolean fanInFanOut) {
        this.layerNames = layerNames;
        this.fanInFanOut = fanInFanOut;
    }

    /** The module name of the layer at {@code path} in the file. */
    public String module(String path) {
        return layerNames.apply(path);
    }

    /** {@code base_model.model.<module>.<suffix>} for the layer at {@code path}. */
    public String key(String path, String suffix) {
        return PREFIX + module(path) + "." + suffix;
    }

    /** The {@code fan_in_fan_out} to write: {@code true} only for models that really use GPT-2's Conv1D layout. */
    public boolean fanInFanOut() {
        return fanInFanOut;
    }
}
