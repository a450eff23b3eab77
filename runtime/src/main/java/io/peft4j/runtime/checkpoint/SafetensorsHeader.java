package io.peft4j.runtime.checkpoint;

import java.util.List;
import java.util.Map;

/**
 * A parsed and validated safetensors header.
 *
 * @param tensors    the entries in file order
 * @param metadata   the optional {@code __metadata__} string map (empty if absent)
 * @param dataOffset where tensor data starts: 8 + the header length
 * @param fileSize   the file's size in bytes
 */
public record SafetensorsHeader(List<TensorInfo> tensors, Map<String, String> metadata, long dataOffset, long fileSize) {

    public TensorInfo tensor(String name) {
        return tensors.stream().filter(tensor -> tensor.name().equals(name)).findFirst().orElse(null);
    }
}
