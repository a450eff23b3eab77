package io.peft4j.runtime;

import io.peft4j.runtime.internal.ReplayKernels;
import java.io.PrintStream;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.List;
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
 * Records every training step's loss and shows progress: on a terminal, one line that updates in
 * place (epoch, step, fraction done, ETA, loss, steps per second); elsewhere (a pipe, a CI log) a plain
 * line every {@code interval} steps. Each epoch ends with a summary line. {@code -Dpeft4j.progress=plain}
 * forces plain lines.
 */
public final class ProgressListener extends BaseListener {

    private static final long REDRAW_NANOS = 200_000_000L;

    private final PrintStream out;
    private final int interval;
    private final long totalSteps;
    private final boolean inPlace;
    private double[] losses = new double[256];
    private double[] stepSeconds = new double[256];
    private long lastStepNanos;
    private int steps;
    private long startNanos;
    private long lastLineNanos;
    private int lastLineStep;
    private double lossSinceLastLine;
    private long lastRedrawNanos;
    private int epochFirstStep;
    private long epochStartNanos;
    private int drawnWidth;

    /** Prints to {@code out} every {@code interval} steps; {@code out} may be {@code null} to record silently. */
    public ProgressListener(PrintStream out, int interval) {
        this(out, interval, 0);
    }

    /** As {@link #ProgressListener(PrintStream, int)}, also showing the fraction done and an ETA out of {@code totalSteps}. */
    public ProgressListener(PrintStream out, int interval, long totalSteps) {
        if (interval <= 0) {
            throw new IllegalArgumentException("interval must be positive, got " + interval);
        }
        this.out = out;
        this.interval = interval;
        this.totalSteps = totalSteps;
        this.inPlace = out == System.out && System.console() != null && !"plain".equals(System.getProperty("peft4j.progress"));
    }

    @Override
    public boolean isActive(Operation operation) {
        return operation == Operation.TRAINING;
    }

    @Override
    public void epochStart(SameDiff sd, At at) {
        long now = System.nanoTime();
        if (startNanos == 0) {
            startNanos = now;
            lastLineNanos = now;
            lastStepNanos = now;
        }
        epochFirstStep = steps;
        epochStartNanos = now;
    }

    @Override
    public void iterationDone(SameDiff sd, At at, MultiDataSet dataSet, Loss loss) {
        if (steps == losses.length) {
            losses = Arrays.copyOf(losses, steps * 2);
            stepSeconds = Arrays.copyOf(stepSeconds, steps * 2);
        }
        long now = System.nanoTime();
        stepSeconds[steps] = (now - lastStepNanos) / 1e9;
        lastStepNanos = now;
        double value = loss.totalLoss();
        losses[steps++] = value;
        lossSinceLastLine += value;
        if (inPlace) {
            if (now - lastRedrawNanos >= REDRAW_NANOS) {
                redraw(at.epoch(), now);
            }
        } else if (steps % interval == 0) {
            printLine(at.epoch());
        }
    }

    @Override
    public ListenerResponse epochEnd(SameDiff sd, At at, LossCurve lossCurve, long epochTimeMillis) {
        if (out == null) {
            return ListenerResponse.CONTINUE;
        }
        if (inPlace) {
            redraw(at.epoch(), System.nanoTime());
            out.println();
            drawnWidth = 0;
        } else if (steps > lastLineStep) {
            printLine(at.epoch());
        }
        int epochSteps = steps - epochFirstStep;
        if (epochSteps > 0) {
            double seconds = (System.nanoTime() - epochStartNanos) / 1e9;
            double mean = Arrays.stream(losses, epochFirstStep, steps).average().orElse(Double.NaN);
            out.printf(Locale.ROOT, "[peft4j] epoch %d done: %d steps in %.1f s (%.3f s/step), mean loss %.4f, last %.4f%n", at.epoch() + 1,
                    epochSteps, seconds, seconds / epochSteps, mean, losses[steps - 1]);
        }
        return ListenerResponse.CONTINUE;
    }

    private String status(int epoch, long now, int stepsInWindow, double windowLoss, double windowSeconds) {
        String done = "";
        if (totalSteps > 0) {
            double elapsed = (now - startNanos) / 1e9;
            long remaining = Math.round(elapsed / steps * Math.max(0, totalSteps - steps));
            done = String.format(Locale.ROOT, "/%d (%3.0f%%, ETA %dm%02ds)", totalSteps, 100.0 * steps / totalSteps, remaining / 60,
                    remaining % 60);
        }
        return String.format(Locale.ROOT, "[peft4j] epoch %d  step %5d%s  loss %.4f  %.2f steps/s", epoch + 1, steps, done,
                windowLoss / stepsInWindow, stepsInWindow / Math.max(1e-9, windowSeconds));
    }

    private void redraw(int epoch, long now) {
        if (out == null || steps == lastLineStep) {
            return;
        }
        String line = status(epoch, now, steps - lastLineStep, lossSinceLastLine, (now - lastLineNanos) / 1e9);
        out.print("\r" + line + " ".repeat(Math.max(0, drawnWidth - line.length())));
        out.flush();
        drawnWidth = line.length();
        lastRedrawNanos = now;
        if (steps - lastLineStep >= interval) {
            lastLineNanos = now;
            lastLineStep = steps;
            lossSinceLastLine = 0;
        }
    }

    private void printLine(int epoch) {
        long now = System.nanoTime();
        if (out != null) {
            out.println(status(epoch, now, steps - lastLineStep, lossSinceLastLine, (now - lastLineNanos) / 1e9));
        }
        lastLineNanos = now;
        lastLineStep = steps;
        lossSinceLastLine = 0;
    }

    /** Notes that training resumes from a checkpoint after {@code steps} steps. */
    public void resumedAt(int steps, Path checkpoint) {
        if (out != null) {
            out.printf(Locale.ROOT, "[peft4j] resuming after step %d from %s%n", steps, checkpoint);
        }
    }

    /**
     * Notes the loss ops ({@code lossOps}, ND4J's op names) whose gradients were multiplied by the
     * gradient of what follows them, which ND4J leaves out; nothing when the list is empty.
     */
    public void lossGradientsCorrected(List<String> lossOps) {
        if (out != null && !lossOps.isEmpty()) {
            out.printf(Locale.ROOT, "[peft4j] chain rule applied to the gradient of %s: ND4J differentiates loss ops as if nothing followed them%n",
                    String.join(", ", lossOps));
        }
    }

    /** Notes what the simplification of the training graph did, when it did anything. */
    public void graphSimplified(GraphSimplification simplification) {
        if (out != null && simplification.changedAnything()) {
            out.printf(Locale.ROOT, "[peft4j] training graph simplified: %s; -D%s=false turns this off%n", simplification.describe(),
                    SameDiffTrainer.SIMPLIFY_GRAPHS);
        }
    }

    /**
     * Notes which kernels replayed steps use: peft4j's vector kernels when {@code unavailableReason} is
     * null, else libnd4j's, with the reason ({@link ReplayKernels#unavailableReason()}); nothing when
     * they were switched off on purpose.
     */
    public void replayKernels(String unavailableReason) {
        if (out == null) {
            return;
        }
        String reason = unavailableReason;
        if (reason == null) {
            out.printf(Locale.ROOT, "[peft4j] replayed steps run elementwise ops, erf, GELU, LayerNorm, attention, low-rank products and Adam in peft4j's vector kernels; -D%s=false turns this off%n",
                    ReplayKernels.PROPERTY);
        } else if (reason != null && !reason.contains(ReplayKernels.PROPERTY)) {
            out.printf(Locale.ROOT, "[peft4j] %s%n", reason);
        }
    }

    /** The run so far: every step's loss and the seconds since the first epoch started. */
    public TrainingReport report() {
        double seconds = startNanos == 0 ? 0 : (System.nanoTime() - startNanos) / 1e9;
        return new TrainingReport(Arrays.copyOf(losses, steps), Arrays.copyOf(stepSeconds, steps), seconds);
    }
}
