package io.peft4j.runtime.checkpoint;

import com.fasterxml.jackson.databind.JsonNode;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * One adapter read from disk and checked as a file (header, offsets, dtypes, finiteness), not yet
 * against a model: its config, its method's tensors, and the tensors of trained extra modules
 * ({@code modules_to_save}), which the checkpoint code separates from the method's.
 */
public final class SavedAdapter {

    private final Path directory;
    private final JsonNode config;
    private final CheckpointTensors tensors;
    private final CheckpointKeys keys;
    private final Map<String, INDArray> moduleTensors;
    private final List<String> modulesToSave;

    SavedAdapter(Path directory, JsonNode config, CheckpointTensors tensors, CheckpointKeys keys, Map<String, INDArray> moduleTensors,
                 List<String> modulesToSave) {
        this.directory = directory;
        this.config = config;
        this.tensors = tensors;
        this.keys = keys;
        this.moduleTensors = Map.copyOf(moduleTensors);
        this.modulesToSave = List.copyOf(modulesToSave);
    }

    public Path directory() {
        return directory;
    }

    public Path configFile() {
        return directory.resolve(AdapterCheckpoint.CONFIG_FILE);
    }

    public Path weightsFile() {
        return directory.resolve(AdapterCheckpoint.WEIGHTS_FILE);
    }

    /** The whole {@code adapter_config.json}; keys peft4j does not use are kept and ignored. */
    public JsonNode config() {
        return config;
    }

    public String peftType() {
        return config.path("peft_type").asText();
    }

    /** The method's tensors (everything but the trained extra modules). */
    public CheckpointTensors tensors() {
        return tensors;
    }

    public CheckpointKeys keys() {
        return keys;
    }

    /** Tensors of the trained extra modules, by key ({@code base_model.model.classifier.weight}). */
    public Map<String, INDArray> moduleTensors() {
        return moduleTensors;
    }

    /** The config's {@code modules_to_save}, as written. */
    public List<String> modulesToSave() {
        return modulesToSave;
    }

    public String taskType() {
        return reader().text("task_type", null);
    }

    public String baseModel() {
        return reader().text("base_model_name_or_path", null);
    }

    /** Strict readers of the config's values; every problem names the config file. */
    public ConfigReader reader() {
        return new ConfigReader(configFile(), config);
    }
}
