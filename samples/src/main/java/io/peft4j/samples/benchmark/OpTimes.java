package io.peft4j.samples.benchmark;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Loss;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.dataset.api.MultiDataSet;

/**
 * Where a SameDiff training step's time goes: the time inside each op's execution, summed by op type,
 * and the time between ops (SameDiff's own bookkeeping and the optimizer updates). Steps before
 * {@code skip} are not counted (warm-up). Attach with {@code sameDiff.addListeners(...)} before training.
 */
final class OpTimes extends BaseListener {
    private final int skip;
    private final boolean byShape;
    private final Map<String, long[]> nanosAndCalls = new HashMap<>();
    private long betweenOps;
    private long afterLastOp;
    private long lastEnd;
    private long opStart;
    private int step;
    private int counted;

    OpTimes(int skip) {
        this(skip, false);
    }

    /** With {@code byShape}, one row per op type and input shapes rather than per op type. */
    OpTimes(int skip, boolean byShape) {
        this.skip = skip;
        this.byShape = byShape;
    }

    @Override
    public boolean isActive(Operation operation) {
        return operation == Operation.TRAINING;
    }

    @Override
    public void iterationStart(SameDiff sd, At at, MultiDataSet data, long etlMs) {
        lastEnd = System.nanoTime();
    }

    @Override
    public void preOpExecution(SameDiff sd, At at, SameDiffOp op, OpContext context) {
        opStart = System.nanoTime();
        if (step >= skip) {
            betweenOps += opStart - lastEnd;
        }
    }

    @Override
    public void opExecution(SameDiff sd, At at, MultiDataSet batch, SameDiffOp op, OpContext context, INDArray[] outputs) {
        lastEnd = System.nanoTime();
        if (step >= skip) {
            String key = byShape ? op.getOp().opName() + " " + context.getInputArrays().stream()
                    .map(input -> input == null ? "-" : java.util.Arrays.toString(input.shape())).toList() : op.getOp().opName();
            long[] entry = nanosAndCalls.computeIfAbsent(key, name -> new long[2]);
            entry[0] += lastEnd - opStart;
            entry[1]++;
        }
    }

    @Override
    public void iterationDone(SameDiff sd, At at, MultiDataSet dataSet, Loss loss) {
        if (step >= skip) {
            afterLastOp += System.nanoTime() - lastEnd;
            counted++;
        }
        step++;
    }

    /** A Markdown table, most expensive op type first, per counted step. */
    String table() {
        List<Map.Entry<String, long[]>> rows = new ArrayList<>(nanosAndCalls.entrySet());
        rows.sort((a, b) -> Long.compare(b.getValue()[0], a.getValue()[0]));
        long inOps = rows.stream().mapToLong(row -> row.getValue()[0]).sum();
        int steps = Math.max(1, counted);
        StringBuilder table = new StringBuilder(String.format(Locale.ROOT,
                "Per step (mean of %d): %.1f ms inside ops, %.1f ms between ops, %.1f ms after the last op.%n%n",
                counted, inOps / 1e6 / steps, betweenOps / 1e6 / steps, afterLastOp / 1e6 / steps));
        table.append("| op | ms / step | calls / step | µs / call |\n|---|---:|---:|---:|\n");
        for (Map.Entry<String, long[]> row : rows) {
            long[] value = row.getValue();
            table.append(String.format(Locale.ROOT, "| %s | %.1f | %d | %.0f |%n", row.getKey(), value[0] / 1e6 / steps,
                    value[1] / steps, value[0] / 1e3 / Math.max(1, value[1])));
        }
        return table.toString();
    }
}
