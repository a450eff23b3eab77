package io.peft4j.runtime.checkpoint;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.function.Consumer;

/** Replaces one file so that no reader ever sees it half-written: written beside it, synced, renamed over it. */
public final class AtomicWrite {

    private AtomicWrite() {
    }

    /** Calls {@code writer} with a temporary path beside {@code file}, then renames it to {@code file}. */
    public static void replace(Path file, Consumer<Path> writer) {
        Path directory = file.toAbsolutePath().getParent();
        try {
            Files.createDirectories(directory);
            try (AtomicFileSet files = new AtomicFileSet(directory)) {
                writer.accept(files.stage(file.getFileName().toString()));
                files.commit();
            }
        } catch (IOException e) {
            throw new CheckpointException(file, "cannot be written: " + e, e);
        }
    }
}
