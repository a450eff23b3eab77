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
 * @param asPlainLora     save a PiSSA or OLoRA adapter as the plain LoRA of rank 2r that gives the same model on the
 *                        original base weights (PEFT's {@code path_initial_model_for_weight_conversion})
 */
public record CheckpointOptions(String adapterName, TensorDtype storeAs, UnaryOperator<String> layerNames, String baseModel,
                                String taskType, boolean allowNonFinite, boolean fanInFanOut, boolean asPlainLora) {

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
        return new CheckpointOptions(null, TensorDtype.F32, UnaryOperator.identity(), null, null, false, false, false);
    }

    /** Only the adapter {@code name}. */
    public CheckpointOptions withAdapterName(String name) {
        return new CheckpointOptions(name, storeAs, layerNames, baseModel, taskType, allowNonFinite, fanInFanOut, asPlainLora);
    }

    public CheckpointOptions withStoreAs(TensorDtype dtype) {
        return new CheckpointOptions(adapterName, dtype, layerNames, baseModel, taskType, allowNonFinite, fanInFanOut, asPlainLora);
    }

    public CheckpointOptions withLayerNames(UnaryOperator<String> mapping) {
        return new CheckpointOptions(adapterName, storeAs, mapping, baseModel, taskType, allowNonFinite, fanInFanOut, asPlainLora);
    }

    public CheckpointOptions withBaseModel(String name) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, name, taskType, allowNonFinite, fanInFanOut, asPlainLora);
    }

    public CheckpointOptions withTaskType(String type) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, type, allowNonFinite, fanInFanOut, asPlainLora);
    }

    public CheckpointOptions withAllowNonFinite(boolean allow) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, taskType, allow, fanInFanOut, asPlainLora);
    }

    public CheckpointOptions withFanInFanOut(boolean conv1d) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, taskType, allowNonFinite, conv1d, asPlainLora);
    }

    /**
     * Saves a PiSSA or OLoRA adapter as PEFT's conversion does: {@code lora_A = [A; A₀]}, {@code lora_B = [B, −B₀]},
     * {@code r} and {@code lora_alpha} doubled ({@code lora_alpha × √2} with rsLoRA, so the scale stays), and
     * {@code init_lora_weights = true}, so that it applies to the original base weights, where
     * {@code s·(B·A − B₀·A₀)} is exactly what training changed.
     */
    public CheckpointOptions withConversionToPlainLora(boolean convert) {
        return new CheckpointOptions(adapterName, storeAs, layerNames, baseModel, taskType, allowNonFinite, fanInFanOut, convert);
    }

    /** How keys are named under these options. */
    public CheckpointKeys keys() {
        return new CheckpointKeys(layerNames, fanInFanOut);
    }
}
