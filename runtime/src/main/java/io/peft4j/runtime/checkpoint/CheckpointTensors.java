package io.peft4j.runtime.checkpoint;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * The tensors of one saved adapter that belong to its method (trained extra modules are taken out
 * first), looked up as Hugging Face PEFT writes them: {@code …lora_A.weight}, and also with the
 * adapter-name segment PEFT's model state dict carries ({@code …lora_A.default.weight}), which some
 * tools keep.
 */
public final class CheckpointTensors {

    private final Path file;
    private final Map<String, INDArray> tensors;
    private final List<String> adapterNames;

    /**
     * @param adapterNames the names that may appear as an adapter segment in keys (the saved adapter's
     *                     and {@code default})
     */
    public CheckpointTensors(Path file, Map<String, INDArray> tensors, Collection<String> adapterNames) {
        this.file = file;
        this.tensors = new LinkedHashMap<>(tensors);
        this.adapterNames = List.copyOf(new LinkedHashSet<>(adapterNames));
    }

    /** The weights file, for messages. */
    public Path file() {
        return file;
    }

    /** Every key as stored. */
    public Set<String> keys() {
        return tensors.keySet();
    }

    /** The tensor stored under {@code key}, or under {@code key} with an adapter segment before its last part; else {@code null}. */
    public INDArray get(String key) {
        String stored = storedKey(key);
        return stored == null ? null : tensors.get(stored);
    }

    private String storedKey(String key) {
        if (tensors.containsKey(key)) {
            return key;
        }
        int last = key.lastIndexOf('.');
        for (String name : adapterNames) {
            String withName = last < 0 ? key + "." + name : key.substring(0, last) + "." + name + key.substring(last);
            if (tensors.containsKey(withName)) {
                return withName;
            }
        }
        return null;
    }

    /**
     * The tensors of exactly the keys {@code expected}, by expected key; throws naming the missing and
     * the unexpected keys otherwise, followed by {@code hint} (what that means for the user).
     */
    public Map<String, INDArray> requireExactly(Collection<String> expected, String hint) {
        List<String> missing = new ArrayList<>();
        Set<String> used = new LinkedHashSet<>();
        Map<String, INDArray> found = new LinkedHashMap<>();
        for (String key : expected) {
            String stored = storedKey(key);
            if (stored == null) {
                missing.add(key);
            } else {
                used.add(stored);
                found.put(key, tensors.get(stored));
            }
        }
        List<String> unexpected = tensors.keySet().stream().filter(key -> !used.contains(key)).toList();
        if (!missing.isEmpty() || !unexpected.isEmpty()) {
            throw new CheckpointException(file, (missing.isEmpty() ? "" : "missing keys " + missing)
                    + (missing.isEmpty() || unexpected.isEmpty() ? "" : "; ") + (unexpected.isEmpty() ? "" : "unexpected keys " + unexpected)
                    + ": " + hint);
        }
        return found;
    }

    /** Throws naming the key, its shape and what needed {@code shape} unless {@code tensor} has it. */
    public void requireShape(String key, INDArray tensor, long[] shape, String what) {
        if (!Arrays.equals(tensor.shape(), shape)) {
            throw new CheckpointException(file, "tensor '" + key + "' has shape " + Arrays.toString(tensor.shape()) + ", but "
                    + what + " needs " + Arrays.toString(shape));
        }
    }
}
