package io.peft4j.runtime.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.runtime.method.MethodState;
import java.io.IOException;
import java.io.InputStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Hugging Face PEFT's adapter directory: {@code adapter_config.json} and
 * {@code adapter_model.safetensors}, the default adapter at the directory's root and every other
 * adapter in a sub-directory named after it. This class knows the files, the common config keys and
 * trained extra modules ({@code modules_to_save}); what a method stores comes from the method as a
 * {@link MethodState} and goes back to it as a {@link SavedAdapter}.
 *
 * <p>Saving is atomic per file, and both files carry the same random save id (the weights in their
 * metadata, the config as {@code peft4j_save_id}), so a save interrupted between its two renames is
 * detected on load rather than silently mixing two adapters, while honest edits of the config (added
 * keys, reformatting) still load. Reading checks the whole file (header, offsets, dtypes, checksums,
 * finiteness) before any method sees a tensor.
 */
public final class AdapterCheckpoint {

    public static final String CONFIG_FILE = "adapter_config.json";
    public static final String WEIGHTS_FILE = "adapter_model.safetensors";
    /** Safetensors metadata key of the save id, which the config carries as {@link #CONFIG_SAVE_ID}. */
    public static final String WEIGHTS_SAVE_ID = "peft4j.save_id";
    /** adapter_config.json key of the save id its weights file carries as {@link #WEIGHTS_SAVE_ID}. */
    public static final String CONFIG_SAVE_ID = "peft4j_save_id";
    /** The name PEFT gives an adapter nobody named; it lives at the directory's root. */
    public static final String DEFAULT_ADAPTER = "default";
    /** Configs above this size are refused: PEFT's are a few kilobytes. */
    public static final long MAX_CONFIG_BYTES = 16L * 1024 * 1024;

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);

    private AdapterCheckpoint() {
    }

    /**
     * One adapter to write.
     *
     * @param name          the adapter's name: {@code default} goes to the directory itself, any other to a sub-directory
     * @param peftType      its method's {@code peft_type}
     * @param state         the method's tensors and config entries
     * @param modulesToSave the trained extra modules as named in the file, or empty
     * @param moduleTensors their tensors by key
     * @param taskType      PEFT's {@code task_type}, or {@code null}
     * @param baseModel     {@code base_model_name_or_path}, or {@code null}
     */
    public record Contents(String name, String peftType, MethodState state, List<String> modulesToSave,
                           Map<String, INDArray> moduleTensors, String taskType, String baseModel) {
    }

    /** {@code dir} for the default adapter, {@code dir/<name>} for any other, as PEFT lays them out. */
    public static Path directoryOf(Path dir, String adapterName) {
        return adapterName.equals(DEFAULT_ADAPTER) ? dir : dir.resolve(adapterName);
    }

    /** Writes one adapter under {@code dir} in PEFT's layout; returns the adapter's own directory. */
    public static Path write(Path dir, Contents contents, TensorDtype storeAs) {
        return write(dir, contents, storeAs, () -> { });
    }

    /** As {@link #write(Path, Contents, TensorDtype)}, running {@code betweenFiles} after the weights are staged. */
    static Path write(Path dir, Contents contents, TensorDtype storeAs, Runnable betweenFiles) {
        Path target = directoryOf(dir, contents.name());
        Map<String, INDArray> tensors = new LinkedHashMap<>(contents.state().tensors());
        contents.moduleTensors().forEach((key, tensor) -> {
            if (tensors.put(key, tensor) != null) {
                throw new CheckpointException(target, "the key '" + key + "' is both an adapter tensor and a trained extra module");
            }
        });
        String saveId = java.util.UUID.randomUUID().toString();
        byte[] config = configJson(contents, saveId);
        Map<String, String> metadata = Map.of("format", "pt", WEIGHTS_SAVE_ID, saveId);
        try {
            Files.createDirectories(target);
            try (AtomicFileSet files = new AtomicFileSet(target)) {
                SafetensorsFile.write(files.stage(WEIGHTS_FILE), tensors, storeAs, metadata);
                betweenFiles.run();
                Files.write(files.stage(CONFIG_FILE), config);
                files.commit();
            }
        } catch (IOException e) {
            throw new CheckpointException(target, "cannot save the adapter: " + e, e);
        }
        return target;
    }

    private static byte[] configJson(Contents contents, String saveId) {
        ObjectNode config = JSON.createObjectNode();
        config.put("peft_type", contents.peftType());
        config.put("task_type", contents.taskType());
        config.put("base_model_name_or_path", contents.baseModel());
        config.put("inference_mode", true);
        config.setAll(contents.state().config());
        if (contents.modulesToSave().isEmpty()) {
            config.putNull("modules_to_save");
        } else {
            ArrayNode modules = config.putArray("modules_to_save");
            contents.modulesToSave().forEach(modules::add);
        }
        config.put(CONFIG_SAVE_ID, saveId);
        try {
            return JSON.writeValueAsBytes(config);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a tree of strings and numbers always serialises", e);
        }
    }

    /**
     * Reads the adapter saved in {@code adapterDir} (its own directory, not the parent of a layout) and
     * checks it as a file. Keys with an adapter-name segment are accepted for {@code adapterName} and
     * {@code default}.
     */
    public static SavedAdapter read(Path adapterDir, String adapterName, CheckpointKeys keys, boolean allowNonFinite) {
        Path configFile = adapterDir.resolve(CONFIG_FILE);
        Path weightsFile = adapterDir.resolve(WEIGHTS_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new CheckpointException(configFile, "missing: " + adapterDir + " is not a PEFT adapter directory");
        }
        if (!Files.isRegularFile(weightsFile)) {
            throw new CheckpointException(weightsFile, "missing: the adapter has a config but no weights");
        }
        byte[] configBytes = readConfigBytes(configFile);
        JsonNode config = parseConfig(configFile, configBytes);
        SafetensorsHeader header = SafetensorsFile.readHeader(weightsFile);
        String weightsId = header.metadata().get(WEIGHTS_SAVE_ID);
        JsonNode configId = config.get(CONFIG_SAVE_ID);
        if (weightsId != null && configId != null && !weightsId.equals(configId.asText())) {
            throw new CheckpointException(weightsFile, "was written with a different " + CONFIG_FILE + " than the one beside it (save id "
                    + weightsId + " vs " + configId.asText() + ": an interrupted save?); save the adapter again");
        }
        Map<String, INDArray> tensors = SafetensorsFile.read(weightsFile, allowNonFinite);
        List<String> modulesToSave = new ConfigReader(configFile, config).strings("modules_to_save");
        Map<String, INDArray> moduleTensors = new LinkedHashMap<>();
        Map<String, INDArray> methodTensors = new LinkedHashMap<>();
        tensors.forEach((key, tensor) -> (isModuleKey(key, modulesToSave) ? moduleTensors : methodTensors).put(key, tensor));
        return new SavedAdapter(adapterDir, config, new CheckpointTensors(weightsFile, methodTensors, List.of(adapterName, DEFAULT_ADAPTER)),
                keys, moduleTensors, modulesToSave);
    }

    /** Reads and parses just the config of the adapter in {@code adapterDir}. */
    public static JsonNode readConfig(Path adapterDir) {
        Path configFile = adapterDir.resolve(CONFIG_FILE);
        if (!Files.isRegularFile(configFile)) {
            throw new CheckpointException(configFile, "missing: " + adapterDir + " is not a PEFT adapter directory");
        }
        return parseConfig(configFile, readConfigBytes(configFile));
    }

    /**
     * Whether {@code key} ({@code base_model.model.<module>.<param>}) belongs to one of the
     * {@code modules}: the key's module path, or one of its ancestors, equals a name or ends with
     * {@code "." + name}, as PEFT matches {@code modules_to_save}.
     */
    static boolean isModuleKey(String key, List<String> modules) {
        if (modules.isEmpty() || !key.startsWith(CheckpointKeys.PREFIX)) {
            return false;
        }
        String path = key.substring(CheckpointKeys.PREFIX.length());
        for (int dot = path.indexOf('.'); dot > 0; dot = path.indexOf('.', dot + 1)) {
            String module = path.substring(0, dot);
            for (String name : modules) {
                if (module.equals(name) || module.endsWith("." + name)) {
                    return true;
                }
            }
        }
        return false;
    }

    private static byte[] readConfigBytes(Path configFile) {
        try {
            long size = Files.size(configFile);
            if (size > MAX_CONFIG_BYTES) {
                throw new CheckpointException(configFile, "is " + size + " bytes, above the " + MAX_CONFIG_BYTES
                        + "-byte limit for an adapter config: not a PEFT config, or a corrupt one");
            }
            try (InputStream in = Files.newInputStream(configFile)) {
                byte[] bytes = in.readNBytes((int) MAX_CONFIG_BYTES + 1);
                if (bytes.length > MAX_CONFIG_BYTES) {
                    throw new CheckpointException(configFile, "grew above the " + MAX_CONFIG_BYTES + "-byte limit while being read");
                }
                return bytes;
            }
        } catch (IOException e) {
            throw new CheckpointException(configFile, "cannot be read: " + e, e);
        }
    }

    private static JsonNode parseConfig(Path file, byte[] bytes) {
        JsonNode root;
        try {
            root = JSON.readTree(new String(bytes, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new CheckpointException(file, "malformed JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new CheckpointException(file, "malformed adapter config: the JSON must be an object");
        }
        if (!root.path("peft_type").isTextual()) {
            throw new CheckpointException(file, "malformed adapter config: no peft_type");
        }
        return root;
    }
}
