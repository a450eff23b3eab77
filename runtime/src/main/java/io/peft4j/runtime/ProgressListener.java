package io.peft4j.runtime;

import java.io.PrintStream;
import java.util.Locale;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.ListenerResponse;
import org.nd4j.autodiff.listeners.Loss;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.listeners.records.LossCurve;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.dataset.api.MultiDataSet;

/**
 * Records every training step's loss and prints a progress line (epoch, step, mean loss since the
 * last line, steps per second) every {@code interval} steps and at the end of each epoch.
 */
public final class ProgressListener extends BaseListener {

    private final PrintStream out;
    private final int interval;
    private final long totalSteps;
    private double[] losses = new double[256];
    private double[] stepSeconds = new double[256];
    private long lastStepNanos;
    private int steps;
    private long startNanos;
    private long lastLineNanos;
    private int lastLineStep;
    private double lossSinceLastLine;

    /** Prints to {@code out} every {@code interval} steps; {@code out} may be {@code null} to record silently. */
    public ProgressListener(PrintStream out, int interval) {
        this(out, interval, 0);
    }

    /** As {@link #ProgressListener(PrintStream, int)}, also printing the fraction done and an ETA out of {@code totalSteps}. */
    public ProgressListener(PrintStream out, int interval, long totalSteps) {
        if (interval <= 0) {
            throw new IllegalArgumentException("interval must be positive, got " + interval);
        }
        this.out = out;
        this.interval = interval;
        this.totalSteps = totalSteps;
    }

    @Override
    public boolean isActive(Operation operation) {
        return operation == Operation.TRAINING;
    }

    @Override
    public void epochStart(SameDiff sd, At at) {
        if (startNanos == 0) {
            startNanos = System.nanoTime();
            lastLineNanos = startNanos;
            lastStepNanos = startNanos;
        }
    }

    @Override
    public void iterationDone(SameDiff sd, At at, MultiDataSet dataSet, Loss loss) {
        if (steps == losses.length) {
            losses = java.util.Arrays.copyOf(losses, steps * 2);
            stepSeconds = java.util.Arrays.copyOf(stepSeconds, steps * 2);
        }
        long now = System.nanoTime();
        stepSeconds[steps] = (now - lastStepNanos) / 1e9;
        lastStepNanos = now;
        double value = loss.totalLoss();
        losses[steps++] = value;
        lossSinceLastLine += value;
        if (steps % interval == 0) {
            printLine(at.epoch());
        }
    }

    @Override
    public ListenerResponse epochEnd(SameDiff sd, At at, LossCurve lossCurve, long epochTimeMillis) {
        if (steps > lastLineStep) {
            printLine(at.epoch());
        }
        return ListenerResponse.CONTINUE;
    }

    private void printLine(int epoch) {
        long now = System.nanoTime();
        int stepsInLine = steps - lastLineStep;
        if (out != null) {
            String done = "";
            if (totalSteps > 0) {
                double elapsed = (now - startNanos) / 1e9;
                long remaining = Math.round(elapsed / steps * Math.max(0, totalSteps - steps));
                done = String.format(Locale.ROOT, "/%d (%3.0f%%, ETA %dm%02ds)", totalSteps, 100.0 * steps / totalSteps,
                        remaining / 60, remaining % 60);
            }
            out.printf(Locale.ROOT, "[peft4j] epoch %d  step %5d%s  loss %.4f  %.2f steps/s%n", epoch + 1, steps, done,
                    lossSinceLastLine / stepsInLine, stepsInLine / Math.max(1e-9, (now - lastLineNanos) / 1e9));
        }
        lastLineNanos = now;
        lastLineStep = steps;
        lossSinceLastLine = 0;
    }

    /** Notes that training resumes from a checkpoint after {@code steps} steps. */
    public void resumedAt(int steps, java.nio.file.Path checkpoint) {
        if (out != null) {
            out.printf(Locale.ROOT, "[peft4j] resuming after step %d from %s%n", steps, checkpoint);
        }
    }

    /** The run so far: every step's loss and the seconds since the first epoch started. */
    public TrainingReport report() {
        double seconds = startNanos == 0 ? 0 : (System.nanoTime() - startNanos) / 1e9;
        return new TrainingReport(java.util.Arrays.copyOf(losses, steps), java.util.Arrays.copyOf(stepSeconds, steps), seconds);
    }
}
