package io.peft4j.runtime.lora;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.runtime.checkpoint.CheckpointKeys;
import io.peft4j.runtime.checkpoint.ConfigReader;
import io.peft4j.runtime.checkpoint.RawTensor;
import io.peft4j.runtime.checkpoint.TensorDtype;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * A saved LoRA layer's weight delta {@code s · B · A} in PEFT's orientation, {@code [out, in]}, from
 * {@code lora_A [r, in]} and {@code lora_B [out, r]}, in plain Java fp64 (for tools without an ND4J
 * backend).
 */
public final class LoraDelta {

    static final String A_SUFFIX = ".lora_A.weight";
    static final String B_SUFFIX = ".lora_B.weight";

    private LoraDelta() {
    }

    /**
     * Every layer's delta {@code s · B · A} ({@code [out, in]}, F64) of a saved LoRA adapter, by module
     * name (its key without {@code base_model.model.} and the {@code lora_A.weight} part), with each
     * layer's scale from the config ({@code lora_alpha}, {@code r}, patterns, rsLoRA). Layers with only one
     * factor are left out.
     */
    public static Map<String, RawTensor> ofAdapter(Path configFile, JsonNode config, Map<String, RawTensor> tensors) {
        LoraConfig read = LoraConfig.read(new ConfigReader(configFile, config), List.of());
        Map<String, RawTensor> deltas = new LinkedHashMap<>();
        tensors.forEach((key, a) -> {
            String layer = layerOf(key, A_SUFFIX);
            if (layer == null) {
                return;
            }
            tensors.entrySet().stream().filter(entry -> layer.equals(layerOf(entry.getKey(), B_SUFFIX))).findFirst()
                    .ifPresent(b -> deltas.put(layer, of(a, b.getValue(), read.scalingOf(layer))));
        });
        return deltas;
    }

    /** The layer of a {@code base_model.model.<layer><suffix>} key (an adapter segment before the last part allowed), or {@code null}. */
    static String layerOf(String key, String suffix) {
        if (!key.startsWith(CheckpointKeys.PREFIX)) {
            return null;
        }
        String path = key.substring(CheckpointKeys.PREFIX.length());
        if (path.endsWith(suffix)) {
            return path.substring(0, path.length() - suffix.length());
        }
        String group = suffix.substring(0, suffix.lastIndexOf('.'));
        int groupAt = path.lastIndexOf(group + ".");
        if (groupAt > 0 && path.endsWith(".weight") && path.indexOf('.', groupAt + group.length() + 1) == path.length() - ".weight".length()) {
            return path.substring(0, groupAt);
        }
        return null;
    }

    /** {@code s · B · A}, {@code [out, in]}, F64; throws if the shapes do not chain. */
    public static RawTensor of(RawTensor loraA, RawTensor loraB, double scale) {
        if (loraA.shape().length != 2 || loraB.shape().length != 2 || loraB.shape()[1] != loraA.shape()[0]) {
            throw new IllegalArgumentException("lora_A " + java.util.Arrays.toString(loraA.shape()) + " and lora_B "
                    + java.util.Arrays.toString(loraB.shape()) + " are not [r, in] and [out, r]");
        }
        int rank = (int) loraA.shape()[0];
        int in = (int) loraA.shape()[1];
        int out = (int) loraB.shape()[0];
        double[] a = loraA.toDoubles();
        double[] b = loraB.toDoubles();
        double[] delta = new double[Math.multiplyExact(out, in)];
        for (int row = 0; row < out; row++) {
            for (int k = 0; k < rank; k++) {
                double factor = scale * b[row * rank + k];
                if (factor == 0) {
                    continue;
                }
                for (int column = 0; column < in; column++) {
                    delta[row * in + column] += factor * a[k * in + column];
                }
            }
        }
        return RawTensor.of(TensorDtype.F64, new long[] {out, in}, delta);
    }
}
