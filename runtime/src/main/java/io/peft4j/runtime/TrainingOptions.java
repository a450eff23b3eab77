package io.peft4j.runtime;

import java.nio.file.Path;

/**
 * How a training run guards itself and survives interruption.
 *
 * @param checkpointDirectory where training checkpoints go ({@code step-<n>/}), or {@code null} for none
 * @param checkpointEvery     write a checkpoint after every this many steps (0: none)
 * @param keepCheckpoints     how many of the newest checkpoints to keep (older ones are deleted)
 * @param resume              start from the newest complete checkpoint in the directory, if there is one
 * @param onNonFinite         what a step with a NaN or infinite loss or gradient does
 */
public record TrainingOptions(Path checkpointDirectory, int checkpointEvery, int keepCheckpoints, boolean resume,
                              NonFinitePolicy onNonFinite) {

    public TrainingOptions {
        if (checkpointEvery < 0) {
            throw new IllegalArgumentException("checkpointEvery must not be negative, got " + checkpointEvery);
        }
        if (keepCheckpoints < 1) {
            throw new IllegalArgumentException("keep at least one checkpoint, got " + keepCheckpoints);
        }
        if ((checkpointEvery > 0 || resume) && checkpointDirectory == null) {
            throw new IllegalArgumentException("checkpoints and resuming need a checkpoint directory");
        }
    }

    /** No checkpoints, no resume, stop on a non-finite step. */
    public static TrainingOptions defaults() {
        return new TrainingOptions(null, 0, 2, false, NonFinitePolicy.STOP);
    }

    /** A checkpoint in {@code directory} after every {@code everySteps} steps. */
    public TrainingOptions withCheckpoints(Path directory, int everySteps) {
        return new TrainingOptions(directory, everySteps, keepCheckpoints, resume, onNonFinite);
    }

    public TrainingOptions withKeepCheckpoints(int count) {
        return new TrainingOptions(checkpointDirectory, checkpointEvery, count, resume, onNonFinite);
    }

    /** Continue from the newest checkpoint in the checkpoint directory, if any (a fresh run otherwise). */
    public TrainingOptions withResume(boolean value) {
        return new TrainingOptions(checkpointDirectory, checkpointEvery, keepCheckpoints, value, onNonFinite);
    }

    public TrainingOptions withNonFinite(NonFinitePolicy policy) {
        return new TrainingOptions(checkpointDirectory, checkpointEvery, keepCheckpoints, resume, policy);
    }
}
