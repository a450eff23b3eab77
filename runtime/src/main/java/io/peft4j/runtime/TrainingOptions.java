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
 * @param loraPlusRatio       LoRA+'s {@code loraplus_lr_ratio}: lora_B and vectors learn at this multiple of the
 *                            learning rate (1: plain training); see {@link #withLoraPlus}
 */
public record TrainingOptions(Path checkpointDirectory, int checkpointEvery, int keepCheckpoints, boolean resume,
                              NonFinitePolicy onNonFinite, double loraPlusRatio) {

    public TrainingOptions {
        if (checkpointEvery < 0) {
            throw new IllegalArgumentException("checkpointEvery must not be negative, got " + checkpointEvery);
        }
        if (keepCheckpoints < 1) {
            throw new IllegalArgumentException("keep at least one checkpoint, got " + keepCheckpoints);
        }
        if (!(loraPlusRatio > 0) || Double.isInfinite(loraPlusRatio)) {
            throw new IllegalArgumentException("the LoRA+ ratio must be positive and finite, got " + loraPlusRatio);
        }
        if ((checkpointEvery > 0 || resume) && checkpointDirectory == null) {
            throw new IllegalArgumentException("checkpoints and resuming need a checkpoint directory");
        }
    }

    /** No checkpoints, no resume, stop on a non-finite step. */
    public static TrainingOptions defaults() {
        return new TrainingOptions(null, 0, 2, false, NonFinitePolicy.STOP, 1.0);
    }

    /** A checkpoint in {@code directory} after every {@code everySteps} steps. */
    public TrainingOptions withCheckpoints(Path directory, int everySteps) {
        return new TrainingOptions(directory, everySteps, keepCheckpoints, resume, onNonFinite, loraPlusRatio);
    }

    public TrainingOptions withKeepCheckpoints(int count) {
        return new TrainingOptions(checkpointDirectory, checkpointEvery, count, resume, onNonFinite, loraPlusRatio);
    }

    /** Continue from the newest checkpoint in the checkpoint directory, if any (a fresh run otherwise). */
    public TrainingOptions withResume(boolean value) {
        return new TrainingOptions(checkpointDirectory, checkpointEvery, keepCheckpoints, value, onNonFinite, loraPlusRatio);
    }

    public TrainingOptions withNonFinite(NonFinitePolicy policy) {
        return new TrainingOptions(checkpointDirectory, checkpointEvery, keepCheckpoints, resume, policy, loraPlusRatio);
    }

    /**
     * LoRA+ (Hayou et al., 2024): every {@code lora_B} and every trained vector (a bias, a norm of a module
     * trained whole) learns at {@code ratio ×} the optimizer's learning rate, the rest at the learning
     * rate, as Hugging Face PEFT's {@code create_loraplus_optimizer(..., loraplus_lr_ratio = ratio)} groups
     * them; PEFT's papers and docs use 16. Exact for optimizers whose update is proportional to the
     * learning rate (SGD, momentum, Adam, Nadam, AMSGrad, AdaMax, AdaGrad, RMSProp), schedules included.
     */
    public TrainingOptions withLoraPlus(double ratio) {
        return new TrainingOptions(checkpointDirectory, checkpointEvery, keepCheckpoints, resume, onNonFinite, ratio);
    }
}
