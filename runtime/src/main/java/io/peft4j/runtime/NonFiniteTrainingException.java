package io.peft4j.runtime;

/**
 * Training stopped at a step whose loss or gradients were NaN or infinite; the parameters and the
 * optimizer state are as they were before that step, and no checkpoint was written from it.
 */
public final class NonFiniteTrainingException extends PeftException {

    private final long step;
    private final String variable;

    public NonFiniteTrainingException(long step, String variable, String what) {
        super("Training step " + step + " produced " + what + (variable == null ? "" : " (first: '" + variable + "')")
                + "; the step was undone and training stopped. Lower the learning rate, clip gradients, or train with "
                + "TrainingOptions.withNonFinite(NonFinitePolicy.SKIP_BATCH) to skip such batches");
        this.step = step;
        this.variable = variable;
    }

    /** The step (0-based iteration count) that went non-finite. */
    public long step() {
        return step;
    }

    /** The first variable whose gradient was not finite, or {@code null} if only the loss was. */
    public String variable() {
        return variable;
    }
}
