package io.peft4j.runtime;

import java.util.Arrays;

/**
 * What one training run did.
 *
 * @param losses      the training loss after every step, in order
 * @param stepSeconds the wall-clock time of every step, in order (the first includes the graph's preparation)
 * @param seconds     wall-clock time of the run
 */
public record TrainingReport(double[] losses, double[] stepSeconds, double seconds) {

    public int steps() {
        return losses.length;
    }

    public double stepsPerSecond() {
        return seconds > 0 ? losses.length / seconds : 0;
    }

    /** The mean loss over the first {@code n} steps (or all, if fewer). */
    public double meanOfFirst(int n) {
        return Arrays.stream(losses, 0, Math.min(n, losses.length)).average().orElse(Double.NaN);
    }

    /** The mean loss over the last {@code n} steps (or all, if fewer). */
    public double meanOfLast(int n) {
        return Arrays.stream(losses, Math.max(0, losses.length - n), losses.length).average().orElse(Double.NaN);
    }
}
