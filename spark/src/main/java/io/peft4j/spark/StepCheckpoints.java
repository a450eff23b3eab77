package io.peft4j.spark;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.stream.Stream;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Where a data-parallel run keeps its state so that a retried stage continues it: after every N steps,
 * worker 0 writes {@code step-<n>/} (trainable parameters, optimizer state, the losses so far) to a
 * directory every executor can read, staged under a temporary name and renamed when complete.
 */
final class StepCheckpoints {

    private static final String PARAMETERS = "parameters.safetensors";
    private static final String OPTIMIZER = "optimizer.safetensors";
    private static final String PROGRESS = "progress.json";
    private static final String PREFIX = "step-";
    private static final int KEEP = 2;
    private static final ObjectMapper JSON = new ObjectMapper();

    /** What a checkpoint holds. */
    record Saved(int step, String runId, String fingerprint, Map<String, INDArray> parameters, Map<String, INDArray> optimizer,
                 List<Double> losses) {
    }

    private StepCheckpoints() {
    }

    static void write(Path directory, int step, String runId, String fingerprint, Map<String, INDArray> parameters,
                      Map<String, INDArray> optimizer, List<Double> losses) {
        try {
            Files.createDirectories(directory);
            Path staged = directory.resolve(".tmp-" + PREFIX + step + "-" + UUID.randomUUID());
            Files.createDirectories(staged);
            SafetensorsFile.write(staged.resolve(PARAMETERS), parameters, widest(parameters), Map.of());
            SafetensorsFile.write(staged.resolve(OPTIMIZER), optimizer, widest(optimizer), Map.of());
            ObjectNode progress = JSON.createObjectNode().put("step", step).put("run", runId).put("fingerprint", fingerprint);
            ArrayNode values = progress.putArray("losses");
            losses.forEach(values::add);
            Files.writeString(staged.resolve(PROGRESS), JSON.writeValueAsString(progress));
            Path target = directory.resolve(PREFIX + step);
            if (Files.exists(target)) {
                deleteTree(target); // a retried stage reaching the same step again writes the same state
            }
            Files.move(staged, target, StandardCopyOption.ATOMIC_MOVE);
            List<Path> complete = complete(directory);
            for (int i = 0; i + KEEP < complete.size(); i++) {
                deleteTree(complete.get(i));
            }
        } catch (IOException e) {
            throw new CheckpointException(directory, "cannot hold the training checkpoint of step " + step + ": " + e, e);
        }
    }

    static Optional<Saved> latest(Path directory) {
        try {
            if (!Files.isDirectory(directory)) {
                return Optional.empty();
            }
            List<Path> complete = complete(directory);
            if (complete.isEmpty()) {
                return Optional.empty();
            }
            Path newest = complete.get(complete.size() - 1);
            JsonNode progress = JSON.readTree(newest.resolve(PROGRESS).toFile());
            List<Double> losses = new ArrayList<>();
            progress.get("losses").forEach(value -> losses.add(value.asDouble()));
            return Optional.of(new Saved(progress.get("step").asInt(), progress.path("run").asText(""), progress.path("fingerprint").asText(""),
                    SafetensorsFile.read(newest.resolve(PARAMETERS)),
                    SafetensorsFile.read(newest.resolve(OPTIMIZER)), losses));
        } catch (IOException e) {
            throw new CheckpointException(directory, "cannot be read for the newest training checkpoint: " + e, e);
        }
    }

    private static List<Path> complete(Path directory) throws IOException {
        try (Stream<Path> entries = Files.list(directory)) {
            return entries.filter(path -> path.getFileName().toString().startsWith(PREFIX) && Files.exists(path.resolve(PROGRESS)))
                    .sorted(Comparator.comparingInt(path -> Integer.parseInt(path.getFileName().toString().substring(PREFIX.length()))))
                    .toList();
        }
    }

    private static TensorDtype widest(Map<String, INDArray> arrays) {
        return arrays.values().stream().anyMatch(array -> array.dataType() == DataType.DOUBLE) ? TensorDtype.F64 : TensorDtype.F32;
    }

    private static void deleteTree(Path root) throws IOException {
        try (Stream<Path> paths = Files.walk(root)) {
            for (Path path : paths.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(path);
            }
        }
    }
}
