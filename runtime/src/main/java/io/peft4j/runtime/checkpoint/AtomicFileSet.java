package io.peft4j.runtime.checkpoint;

import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.UUID;

/**
 * Replaces several files of one directory so that no reader ever sees a half-written file: each is
 * written to a temporary file in the same directory and synced, and only when all are staged are they
 * renamed into place, in the order staged, and the directory synced. Closing without
 * {@link #commit()} deletes the temporary files and leaves the directory as it was. A commit also
 * removes temporary files of the same names that an earlier, killed save left behind (saves into one
 * directory are not meant to run at once).
 */
final class AtomicFileSet implements AutoCloseable {

    private final Path directory;
    private final Map<Path, Path> staged = new LinkedHashMap<>();

    AtomicFileSet(Path directory) {
        this.directory = directory;
    }

    /** A temporary path for {@code fileName}; write it, then call {@link #commit()}. */
    Path stage(String fileName) {
        Path temporary = directory.resolve("." + fileName + ".tmp-" + UUID.randomUUID());
        staged.put(directory.resolve(fileName), temporary);
        return temporary;
    }

    void commit() throws IOException {
        for (Path temporary : staged.values()) {
            try (FileChannel channel = FileChannel.open(temporary, StandardOpenOption.WRITE)) {
                channel.force(true);
            }
        }
        for (Map.Entry<Path, Path> file : staged.entrySet()) {
            try {
                Files.move(file.getValue(), file.getKey(), StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException e) {
                Files.move(file.getValue(), file.getKey(), StandardCopyOption.REPLACE_EXISTING);
            }
        }
        Map<Path, Path> committed = new LinkedHashMap<>(staged);
        staged.clear();
        syncDirectory();
        removeLeftovers(committed);
    }

    private void removeLeftovers(Map<Path, Path> committed) {
        for (Path target : committed.keySet()) {
            String prefix = "." + target.getFileName() + ".tmp-";
            try (java.util.stream.Stream<Path> files = Files.list(directory)) {
                for (Path leftover : files.filter(file -> file.getFileName().toString().startsWith(prefix)).toList()) {
                    Files.deleteIfExists(leftover);
                }
            } catch (IOException cannotList) {
                // Leftovers are hidden and never read as an adapter; the next save tries again.
            }
        }
    }

    private void syncDirectory() {
        try (FileChannel channel = FileChannel.open(directory, StandardOpenOption.READ)) {
            channel.force(true);
        } catch (IOException | UnsupportedOperationException notSupportedOnThisFileSystem) {
            // Some platforms cannot open a directory for sync; the renames are still atomic.
        }
    }

    @Override
    public void close() {
        for (Path temporary : staged.values()) {
            try {
                Files.deleteIfExists(temporary);
            } catch (IOException ignored) {
                // A leftover hidden temporary file is harmless and is never read as an adapter.
            }
        }
    }
}
