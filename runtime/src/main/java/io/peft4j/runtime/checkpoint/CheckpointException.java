package io.peft4j.runtime.checkpoint;

import io.peft4j.runtime.PeftException;
import java.nio.file.Path;

/** A checkpoint that cannot be read or written; the message starts with the file concerned. */
public final class CheckpointException extends PeftException {

    private final Path file;

    public CheckpointException(Path file, String problem) {
        super(file + ": " + problem);
        this.file = file;
    }

    public CheckpointException(Path file, String problem, Throwable cause) {
        super(file + ": " + problem, cause);
        this.file = file;
    }

    /** The file (or directory) the problem is in. */
    public Path file() {
        return file;
    }
}
