package io.peft4j.runtime.checkpoint;

import java.util.function.UnaryOperator;

/**
 * How an adapter is saved or loaded.
 *
 * @param adapterName     PEFT's adapter name: {@code "default"} lives in the directory itself, any
 *                        other in {@code <dir>/<adapterName>/}
 * @param storeAs         the dtype written: {@link TensorDtype#F32} (default) or {@link TensorDtype#BF16}
 * @param layerNames      maps a peft4j layer path to the module name used in the file, e.g. to match
 *                        the same model's names in PyTorch; applied on save and on load
 * @param baseModel       {@code base_model_name_or_path} written to the config (may be {@code null})
 * @param taskType        PEFT's {@code task_type} written to the config (may be {@code null})
 * @param allowNonFinite  load tensors containing NaN or Inf instead of refusing them
 */
public record CheckpointOptions(String adapterName, TensorDtype storeAs, UnaryOperator<String> layerNames, String baseModel,
                                String taskType, boolean allowNonFinite) {

    public CheckpointOptions {
        if (adapterName == null || adapterName.isBlank() || adapterName.contains("/") || adapterName.contains("\\")) {
            throw new IllegalArgumentException("adapter name must be a plain directory name, got '" + adapterName + "'");
        }
        if (storeAs != TensorDtype.F32 && storeAs != TensorDtype.BF16) {
            throw new IllegalArgumentException("adapters are written as F32 or BF16, not " + storeAs);
        }
    }

    /** The default adapter, F32, layer paths unchanged. */
    public static CheckpointOptions defaults() {
        return new CheckpointOptions("default", TensorDtype.F32, UnaryOperator.identity(), null, null, false);
    }

    public CheckpointOptions withAdapterName(String name) {
        return new CheckpointOptions(name, storeAs, layerNames, baseModel, taskType, allowNonFinite);
    }

    public CheckpointOptions withStoreAs(TensorDtype dtype) {
        return new CheckpointOptions(adapterName, dtype, layerNames, baseModel, taskType, allowNonFinite);
    }

    public CheckpointOptions withLayerNames(UnaryOperator<String> mapping) {
        return new CheckpointOptions(adapterName, storeAs, mapping, baseModel, taskType, allowNonFinite);
    }

    public CheckpointOptions withBaseModel(String name) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, name, taskType, allowNonFinite);
    }

    public CheckpointOptions withTaskType(String type) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, type, allowNonFinite);
    }

    public CheckpointOptions withAllowNonFinite(boolean allow) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, taskType, allow);
    }
}
