package io.peft4j.samples.benchmark;

import io.peft4j.runtime.PeftMethod;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.samples.PeakMemory;
import io.peft4j.samples.transformer.TransformerClassifier;
import io.peft4j.samples.transformer.TransformerConfig;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/**
 * Times the sample transformer at fixed shapes (batch 16, sequence 64, hidden 256, 4 heads,
 * 4 layers, FFN 1024, a 1,000-token vocabulary and 1,000 classes per token): training steps for
 * full fine-tuning, LoRA (r = 8 on query and value) and a bottleneck adapter, forward passes of the
 * base model, LoRA unmerged and merged, and the adapter. It reports medians and ranges after
 * warm-up, peak resident memory, and achieved GFLOP/s against a single-GEMM peak measured on the
 * same machine. Writes the table to {@code target/benchmark.md}.
 */
public final class TransformerBenchmark {

    static final TransformerConfig SHAPES = new TransformerConfig(1000, 64, 256, 4, 4, 1024, 1000);
    static final int BATCH = 16;
    private static final int WARMUP = 3;
    private static final int REPEATS = 20;
    private static final String TOKENS = "tokens";
    private static final String LABELS = "labels";

    /** One measured row: seconds per operation. */
    record Row(String what, double median, double min, double max, double gflops, long peakMemoryMb) {
    }

    public static void main(String[] args) throws IOException {
        double peak = gemmPeakGflops(2048);
        MultiDataSet batch = batch();
        List<Row> rows = new ArrayList<>();
        rows.add(trainingStep("training step: full fine-tuning", null, batch));
        rows.add(trainingStep("training step: LoRA (r = 8, q and v)", PeftMethod.LORA, batch));
        rows.add(trainingStep("training step: bottleneck adapter (Pfeiffer)", PeftMethod.ADAPTER, batch));
        rows.addAll(forwardPasses(batch));
        StringBuilder table = new StringBuilder(String.format(Locale.ROOT,
                "Single-GEMM peak (2048 × 2048 × 2048, fp32, Nd4j.gemm into a preallocated output): %.1f GFLOP/s%n%n", peak));
        table.append("| measurement | median (ms) | min – max (ms) | GFLOP/s | % of GEMM peak | peak memory (MB) |\n");
        table.append("|---|---:|---:|---:|---:|---:|\n");
        for (Row row : rows) {
            table.append(String.format(Locale.ROOT, "| %s | %.1f | %.1f – %.1f | %.1f | %.0f %% | %s |%n", row.what(), row.median() * 1e3,
                    row.min() * 1e3, row.max() * 1e3, row.gflops(), 100 * row.gflops() / peak,
                    row.peakMemoryMb() > 0 ? String.format(Locale.ROOT, "%,d", row.peakMemoryMb()) : "—"));
        }
        appendPyTorchComparison(table, rows);
        System.out.println(table);
        Files.createDirectories(Path.of("target"));
        Files.writeString(Path.of("target", "benchmark.md"), table.toString());
    }

    private static void appendPyTorchComparison(StringBuilder table, List<Row> rows) {
        java.util.Optional<com.fasterxml.jackson.databind.JsonNode> reference;
        try {
            reference = PyTorchReference.run(Runtime.getRuntime().availableProcessors());
        } catch (IOException | InterruptedException e) {
            table.append(String.format(Locale.ROOT, "%nThe PyTorch reference failed: %s%n", e.getMessage()));
            return;
        }
        if (reference.isEmpty()) {
            table.append(String.format(Locale.ROOT, "%nNo Python with torch was found (apt-get install python3-torch); "
                    + "no PyTorch comparison.%n"));
            return;
        }
        com.fasterxml.jackson.databind.JsonNode torch = reference.get();
        table.append(String.format(Locale.ROOT, "%nPyTorch %s (%s, %d threads), same shapes and run counts:%n%n",
                torch.path("torch").asText(), torch.path("python").asText(), torch.path("threads").asInt()));
        table.append("| measurement | peft4j median (ms) | PyTorch median (ms) | PyTorch min – max (ms) | peft4j / PyTorch |\n");
        table.append("|---|---:|---:|---:|---:|\n");
        String[][] pairs = {{"training step: full fine-tuning", "full_step_ms"}, {"training step: LoRA (r = 8, q and v)", "lora_step_ms"},
                {"forward: base model", "forward_ms"}};
        for (String[] pair : pairs) {
            Row ours = rows.stream().filter(row -> row.what().equals(pair[0])).findFirst().orElseThrow();
            com.fasterxml.jackson.databind.JsonNode theirs = torch.path(pair[1]);
            table.append(String.format(Locale.ROOT, "| %s | %.1f | %.1f | %.1f – %.1f | %.2f |%n", pair[0], ours.median() * 1e3,
                    theirs.path("median").asDouble(), theirs.path("min").asDouble(), theirs.path("max").asDouble(),
                    ours.median() * 1e3 / theirs.path("median").asDouble()));
        }
    }

    /** Random tokens {@code [16, 64]} and one-hot targets {@code [16, 64, 1000]}. */
    private static MultiDataSet batch() {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(7);
        INDArray tokens = Nd4j.rand(random, BATCH, SHAPES.sequenceLength()).muli(SHAPES.vocabulary()).castTo(DataType.INT32);
        INDArray targets = Nd4j.rand(random, BATCH, SHAPES.sequenceLength()).muli(SHAPES.classes()).castTo(DataType.INT32);
        INDArray labels = Nd4j.zeros(DataType.FLOAT, BATCH, SHAPES.sequenceLength(), SHAPES.classes());
        for (int b = 0; b < BATCH; b++) {
            for (int t = 0; t < SHAPES.sequenceLength(); t++) {
                labels.putScalar(new long[] {b, t, targets.getInt(b, t)}, 1f);
            }
        }
        return new MultiDataSet(new INDArray[] {tokens}, new INDArray[] {labels});
    }

    private static SDVariable graph(TransformerClassifier model) {
        SameDiff sd = model.sameDiff();
        // A second graph in the same SameDiff (after merging) reuses the placeholders.
        SDVariable tokens = sd.hasVariable(TOKENS) ? sd.getVariable(TOKENS)
                : sd.placeHolder(TOKENS, DataType.INT32, -1, SHAPES.sequenceLength());
        SDVariable labels = sd.hasVariable(LABELS) ? sd.getVariable(LABELS)
                : sd.placeHolder(LABELS, DataType.FLOAT, -1, SHAPES.sequenceLength(), SHAPES.classes());
        SDVariable logits = model.tokenLogits(tokens);
        sd.setLossVariables(sd.loss.softmaxCrossEntropy(labels.reshape(-1, SHAPES.classes()),
                logits.reshape(-1, SHAPES.classes()), null));
        return logits;
    }

    private static Row trainingStep(String what, PeftMethod method, MultiDataSet batch) {
        TransformerClassifier model = new TransformerClassifier(SameDiff.create(), SHAPES, 1);
        PeftModel peft = method == null ? null : PeftModel.builder(model).only(method).attach();
        graph(model);
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(1e-4)).dataSetFeatureMapping(TOKENS)
                .dataSetLabelMapping(LABELS).build();
        int steps = WARMUP + REPEATS;
        TrainingReport report;
        long peakMemory;
        try (PeakMemory memory = new PeakMemory()) {
            SingletonMultiDataSetIterator data = new SingletonMultiDataSetIterator(batch);
            ProgressListener silent = new ProgressListener(null, steps);
            report = peft != null ? peft.train(config, data, steps, silent)
                    : SameDiffTrainer.fit(model.sameDiff(), config, data, steps, silent);
            peakMemory = memory.peakBytes() / (1024 * 1024);
        }
        double[] measured = Arrays.copyOfRange(report.stepSeconds(), WARMUP, steps);
        return row(what, measured, 3 * forwardFlops(), peakMemory);
    }

    private static List<Row> forwardPasses(MultiDataSet batch) {
        List<Row> rows = new ArrayList<>();
        TransformerClassifier base = new TransformerClassifier(SameDiff.create(), SHAPES, 1);
        rows.add(row("forward: base model", time(base.sameDiff(), graph(base), batch), forwardFlops(), 0));
        TransformerClassifier lora = new TransformerClassifier(SameDiff.create(), SHAPES, 1);
        PeftModel peft = PeftModel.builder(lora).only(PeftMethod.LORA).attach();
        peft.layers().forEach(layer -> layer.weights().b().assign(0.01));
        rows.add(row("forward: LoRA unmerged", time(lora.sameDiff(), graph(lora), batch), forwardFlops(), 0));
        peft.merge();
        rows.add(row("forward: LoRA merged", time(lora.sameDiff(), graph(lora), batch), forwardFlops(), 0));
        TransformerClassifier adapter = new TransformerClassifier(SameDiff.create(), SHAPES, 1);
        PeftModel.builder(adapter).only(PeftMethod.ADAPTER).attach();
        rows.add(row("forward: bottleneck adapter", time(adapter.sameDiff(), graph(adapter), batch), forwardFlops(), 0));
        return rows;
    }

    private static double[] time(SameDiff sd, SDVariable logits, MultiDataSet batch) {
        Map<String, INDArray> feed = Map.of(TOKENS, batch.getFeatures(0));
        for (int i = 0; i < WARMUP; i++) {
            sd.output(feed, logits.name());
        }
        double[] seconds = new double[REPEATS];
        for (int i = 0; i < REPEATS; i++) {
            long start = System.nanoTime();
            sd.output(feed, logits.name());
            seconds[i] = (System.nanoTime() - start) / 1e9;
        }
        return seconds;
    }

    private static Row row(String what, double[] seconds, double flops, long peakMemoryMb) {
        double[] sorted = seconds.clone();
        Arrays.sort(sorted);
        double median = sorted[sorted.length / 2];
        return new Row(what, median, sorted[0], sorted[sorted.length - 1], flops / median / 1e9, peakMemoryMb);
    }

    /** Multiply-adds of one forward pass of the batch, counted as 2 FLOPs each. */
    static double forwardFlops() {
        double tokens = (double) BATCH * SHAPES.sequenceLength();
        double d = SHAPES.hidden();
        double perLayer = 4 * tokens * d * d * 2                            // query, key, value, output
                + 2 * tokens * SHAPES.sequenceLength() * d * 2              // scores and weighted values
                + 2 * tokens * d * SHAPES.feedForward() * 2;                // feed-forward up and down
        return tokens * SHAPES.vocabulary() * d * 2                         // one-hot embedding product
                + SHAPES.layers() * perLayer
                + tokens * d * SHAPES.classes() * 2;                        // per-token classifier
    }

    /** GFLOP/s of {@code Nd4j.gemm} for {@code n × n} fp32 matrices into a preallocated output (median of 5). */
    static double gemmPeakGflops(int n) {
        INDArray a = Nd4j.rand(DataType.FLOAT, n, n);
        INDArray b = Nd4j.rand(DataType.FLOAT, n, n);
        INDArray c = Nd4j.createUninitialized(DataType.FLOAT, new long[] {n, n}, 'f');
        Nd4j.gemm(a, b, c, false, false, 1.0, 0.0);
        double[] seconds = new double[5];
        for (int i = 0; i < seconds.length; i++) {
            long start = System.nanoTime();
            Nd4j.gemm(a, b, c, false, false, 1.0, 0.0);
            seconds[i] = (System.nanoTime() - start) / 1e9;
        }
        Arrays.sort(seconds);
        return 2.0 * n * n * n / seconds[2] / 1e9;
    }
}
