package io.peft4j.runtime.checkpoint;

import java.util.function.UnaryOperator;

/**
 * How adapters are saved or loaded.
 *
 * @param adapterName     the one adapter to save or load; {@code null} saves every adapter and loads
 *                        {@code "default"}. In PEFT's layout {@code "default"} lives in the directory
 *                        itself and any other adapter in {@code <dir>/<adapterName>/}
 * @param storeAs         the dtype written: {@link TensorDtype#F32} (default), {@link TensorDtype#BF16}, or
 *                        {@link TensorDtype#F64} (training checkpoints of fp64 models)
 * @param layerNames      maps a peft4j layer path to the module name used in the file, e.g. to match
 *                        the same model's names in PyTorch; applied on save and on load
 * @param baseModel       {@code base_model_name_or_path} written to the config, overriding the adapter's own
 * @param taskType        PEFT's {@code task_type} written to the config, overriding the adapter's own
 * @param allowNonFinite  load tensors containing NaN or Inf instead of refusing them
 * @param fanInFanOut     the {@code fan_in_fan_out} written for LoRA: {@code false} (the default) describes
 *                        PyTorch's {@code nn.Linear}, {@code true} GPT-2's {@code Conv1D}; it describes the
 *                        module a PEFT user loads into, not peft4j's own {@code @Weight} layout
 */
public record CheckpointOptions(String adapterName, TensorDtype storeAs, UnaryOperator<String> layerNames, String baseModel,
                                String taskType, boolean allowNonFinite, boolean fanInFanOut) {

    public CheckpointOptions {
        if (adapterName != null && (adapterName.isBlank() || adapterName.contains("/") || adapterName.contains("\\")
                || adapterName.equals(".") || adapterName.equals(".."))) {
            throw new IllegalArgumentException("adapter name must be a plain directory name, got '" + adapterName + "'");
        }
        if (storeAs == TensorDtype.F16) {
            throw new IllegalArgumentException("adapters are written as F32, BF16 or F64, not F16 (its range is too small for trained "
                    + "LoRA factors)");
        }
    }

    /** Every adapter (save) or the default one (load), F32, layer paths unchanged, {@code fan_in_fan_out = false}. */
    public static CheckpointOptions defaults() {
        return new CheckpointOptions(null, TensorDtype.F32, UnaryOperator.identity(), null, null, false, false);
    }

    /** Only the adapter {@code name}. */
    public CheckpointOptions withAdapterName(String name) {
        return new CheckpointOptions(name, storeAs, layerNames, baseModel, taskType, allowNonFinite, fanInFanOut);
    }

    public CheckpointOptions withStoreAs(TensorDtype dtype) {
        return new CheckpointOptions(adapterName, dtype, layerNames, baseModel, taskType, allowNonFinite, fanInFanOut);
    }

    public CheckpointOptions withLayerNames(UnaryOperator<String> mapping) {
        return new CheckpointOptions(adapterName, storeAs, mapping, baseModel, taskType, allowNonFinite, fanInFanOut);
    }

    public CheckpointOptions withBaseModel(String name) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, name, taskType, allowNonFinite, fanInFanOut);
    }

    public CheckpointOptions withTaskType(String type) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, type, allowNonFinite, fanInFanOut);
    }

    public CheckpointOptions withAllowNonFinite(boolean allow) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, taskType, allow, fanInFanOut);
    }

    public CheckpointOptions withFanInFanOut(boolean conv1d) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, taskType, allowNonFinite, conv1d);
    }

    /** How keys are named under these options. */
    public CheckpointKeys keys() {
        return new CheckpointKeys(layerNames, fanInFanOut);
    }
}
