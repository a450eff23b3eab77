package io.peft4j.runtime.internal;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.Comparator;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.UUID;
import java.util.stream.Stream;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.GradientUpdater;

/**
 * Training checkpoints in one directory: {@code step-<n>/} holds what the model trains (adapters in
 * PEFT's format, or variables), {@code optimizer.safetensors} (every updater state array, bit for bit)
 * and {@code trainer_state.json} (iteration and epoch counts, the position in the epoch, the random
 * generator's state). Each is written to a hidden temporary directory and renamed into place, so a
 * killed run leaves only complete checkpoints; the newest {@code keep} are kept.
 */
public final class TrainingCheckpoints {

    /** What a checkpoint stores of the trained model itself. */
    public interface ModelState {
        void save(Path directory);

        void load(Path directory);
    }

    /**
     * Where training stands after a step.
     *
     * @param iterationCount the TrainingConfig's iteration count (steps done, skipped batches not counted)
     * @param epochCount     the TrainingConfig's epoch count (epochs finished)
     * @param batchInEpoch   batches of the current epoch consumed
     * @param rngRoot        the random generator's root state
     * @param rngNode        the random generator's node state
     */
    public record Position(int iterationCount, int epochCount, int batchInEpoch, long rngRoot, long rngNode) {
    }

    /** A checkpoint to resume from. */
    public record Resumed(Path directory, Position position, Map<String, Map<String, INDArray>> optimizer) {
    }

    static final String STATE_FILE = "trainer_state.json";
    static final String OPTIMIZER_FILE = "optimizer.safetensors";
    static final String MODEL_DIRECTORY = "model";
    private static final String FORMAT = "peft4j-training-checkpoint/1";
    private static final String SEPARATOR = "::";
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private final Path directory;
    private final int keep;
    private final ModelState model;

    public TrainingCheckpoints(Path directory, int keep, ModelState model) {
        this.directory = directory;
        this.keep = keep;
        this.model = model;
    }

    /** Writes the checkpoint of {@code sd}'s training at {@code position}; returns its directory. */
    public Path write(SameDiff sd, Position position) {
        Path target = directory.resolve(String.format("step-%09d", position.iterationCount()));
        Path staging = directory.resolve(".step-" + position.iterationCount() + ".tmp-" + UUID.randomUUID());
        try {
            Files.createDirectories(staging);
            model.save(staging.resolve(MODEL_DIRECTORY));
            Map<String, INDArray> optimizer = new LinkedHashMap<>();
            Map<String, GradientUpdater> updaters = sd.getUpdaterMap();
            if (updaters != null) {
                updaters.forEach((variable, updater) -> {
                    if (updater.getState() != null) {
                        updater.getState().forEach((key, value) -> optimizer.put(variable + SEPARATOR + key, (INDArray) value));
                    }
                });
            }
            boolean wide = optimizer.values().stream().anyMatch(array -> array.dataType() == org.nd4j.linalg.api.buffer.DataType.DOUBLE);
            SafetensorsFile.write(staging.resolve(OPTIMIZER_FILE), optimizer, wide ? TensorDtype.F64 : TensorDtype.F32, Map.of("format", "pt"));
            ObjectNode state = JSON.createObjectNode();
            state.put("format", FORMAT);
            state.put("iteration_count", position.iterationCount());
            state.put("epoch_count", position.epochCount());
            state.put("batch_in_epoch", position.batchInEpoch());
            state.put("rng_root", position.rngRoot());
            state.put("rng_node", position.rngNode());
            state.put("updater", sd.getTrainingConfig().getUpdater().getClass().getName());
            Path stateFile = staging.resolve(STATE_FILE);
            Files.write(stateFile, JSON.writeValueAsBytes(state));
            try (FileChannel channel = FileChannel.open(stateFile, StandardOpenOption.WRITE)) {
                channel.force(true);
            }
            deleteTree(target);
            try {
                Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(staging, target);
            }
            prune();
        } catch (IOException e) {
            throw new CheckpointException(target, "cannot write the training checkpoint: " + e, e);
        } finally {
            try {
                deleteTree(staging);
            } catch (IOException ignored) {
                // a hidden leftover is removed by the next checkpoint
            }
        }
        return target;
    }

    /** Keeps the newest {@code keep} checkpoints and removes leftovers of killed writes. */
    private void prune() throws IOException {
        List<Path> complete = complete(directory);
        for (int i = 0; i < complete.size() - keep; i++) {
            deleteTree(complete.get(i));
        }
        try (Stream<Path> children = Files.list(directory)) {
            for (Path leftover : children.filter(child -> child.getFileName().toString().startsWith(".step-")).toList()) {
                deleteTree(leftover);
            }
        }
    }

    /** The complete checkpoints in {@code directory}, oldest first. */
    private static List<Path> complete(Path directory) throws IOException {
        if (!Files.isDirectory(directory)) {
            return List.of();
        }
        try (Stream<Path> children = Files.list(directory)) {
            return children.filter(child -> child.getFileName().toString().matches("step-\\d+") && Files.isRegularFile(child.resolve(STATE_FILE)))
                    .sorted(Comparator.comparing(child -> child.getFileName().toString())).toList();
        }
    }

    /** The newest complete checkpoint in {@code directory}, read; empty if there is none. */
    public Optional<Resumed> latest() {
        try {
            List<Path> complete = complete(directory);
            if (complete.isEmpty()) {
                return Optional.empty();
            }
            Path newest = complete.get(complete.size() - 1);
            JsonNode state = JSON.readTree(newest.resolve(STATE_FILE).toFile());
            if (!FORMAT.equals(state.path("format").asText())) {
                throw new CheckpointException(newest.resolve(STATE_FILE), "is not a peft4j training checkpoint (" + FORMAT + ")");
            }
            Position position = new Position(state.path("iteration_count").asInt(), state.path("epoch_count").asInt(),
                    state.path("batch_in_epoch").asInt(), state.path("rng_root").asLong(), state.path("rng_node").asLong());
            Map<String, Map<String, INDArray>> optimizer = new HashMap<>();
            SafetensorsFile.read(newest.resolve(OPTIMIZER_FILE), true).forEach((key, value) -> {
                int split = key.lastIndexOf(SEPARATOR);
                optimizer.computeIfAbsent(key.substring(0, split), unused -> new HashMap<>()).put(key.substring(split + SEPARATOR.length()), value);
            });
            return Optional.of(new Resumed(newest, position, optimizer));
        } catch (IOException e) {
            throw new CheckpointException(directory, "cannot read the training checkpoints: " + e, e);
        }
    }

    /** Puts {@code resumed}'s model state back. */
    public void restoreModel(Resumed resumed) {
        model.load(resumed.directory().resolve(MODEL_DIRECTORY));
    }

    /** Writes {@code resumed}'s optimizer state into {@code sd}'s updaters (see {@link #createUpdaters}). */
    public static void restoreOptimizer(SameDiff sd, Resumed resumed) {
        createUpdaters(sd);
        Map<String, GradientUpdater> updaters = sd.getUpdaterMap();
        resumed.optimizer().forEach((variable, state) -> {
            GradientUpdater<?> updater = updaters == null ? null : updaters.get(variable);
            if (updater == null || updater.getState() == null) {
                throw new CheckpointException(resumed.directory().resolve(OPTIMIZER_FILE), "holds optimizer state for '" + variable
                        + "', which this run does not train: resume with the adapters and optimizer the checkpoint was made with");
            }
            Map<String, INDArray> live = updater.getState();
            state.forEach((key, value) -> live.get(key).assign(value.castTo(live.get(key).dataType())));
        });
    }

    /**
     * Makes SameDiff create its updaters now rather than inside the first training step, so that their
     * state can be read and written before any step (to resume, and to undo a step). SameDiff keeps them
     * from then on, across fit calls and freezes.
     */
    public static void createUpdaters(SameDiff sd) {
        if (sd.isInitializedTraining()) {
            return;
        }
        try {
            java.lang.reflect.Method initialize = SameDiff.class.getDeclaredMethod("initializeTraining");
            initialize.setAccessible(true);
            initialize.invoke(sd);
        } catch (ReflectiveOperationException | RuntimeException e) {
            throw new IllegalStateException("ND4J's SameDiff.initializeTraining() could not be called (another ND4J version?): " + e, e);
        }
    }

    /** The random generator's state now. */
    public static long[] randomState() {
        return new long[] {Nd4j.getRandom().rootState(), Nd4j.getRandom().nodeState()};
    }

    private static void deleteTree(Path root) throws IOException {
        if (!Files.exists(root)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(root)) {
            for (Path path : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.deleteIfExists(path);
            }
        }
    }
}
