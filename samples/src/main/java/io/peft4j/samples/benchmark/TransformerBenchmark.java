package io.peft4j.samples.benchmark;

import io.peft4j.runtime.lora.LoraAdapter;
import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.OpenBlasKernels;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.RecordedInference;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.samples.PeakMemory;
import io.peft4j.samples.benchmark.Workload.Method;
import io.peft4j.samples.benchmark.Workload.Model;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.Optional;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.GradientUpdater;

/**
 * Times two workloads at fixed shapes: the sample transformer (batch 16, sequence 64) and the
 * pretrained all-MiniLM-L6-v2 (batch 16, sequence 128). For each: training steps with full fine-tuning,
 * LoRA (r = 8 on query and value) and a bottleneck adapter (replayed after the first steps, as
 * {@code SameDiffTrainer} trains); forward passes of the base model, LoRA unmerged and merged, and
 * the adapter, replayed by a {@link RecordedInference}, and the base model's in SameDiff's executor.
 * It reports medians and ranges after warm-up, peak resident
 * memory, the optimizer's state, and achieved GFLOP/s against a single-GEMM peak measured on the same
 * machine with the same number of threads. When a Python with {@code torch} is found, it runs
 * {@code benchmarks/pytorch_reference.py} on the same model, shapes and thread count and prints the
 * ratios. Writes the tables to {@code target/benchmark.md}.
 *
 * <p>Arguments: none for both workloads, or {@code transformer} or {@code minilm}; {@code --profile}
 * adds, for each training step, the time per op type ({@link OpTimes}), {@code --profile-shapes} per op type
 * and input shapes. The thread count is peft4j's
 * ({@link ComputeThreads}; set it with {@code -Dpeft4j.threads=N}).
 */
public final class TransformerBenchmark {
    private static final int WARMUP = 3;
    private static boolean profileByShape;
    private static final int REPEATS = 20;

    /** One measured row: seconds per operation. */
    record Row(String what, double median, double min, double max, double gflops, long peakMemoryMb, long optimizerStateBytes,
               String profile) {
    }

    public static void main(String[] args) throws IOException {
        int threads = ComputeThreads.apply();
        boolean profile = Arrays.asList(args).contains("--profile") || Arrays.asList(args).contains("--profile-shapes");
        profileByShape = Arrays.asList(args).contains("--profile-shapes");
        List<String> named = Arrays.stream(args).filter(arg -> !arg.startsWith("--")).toList();
        List<String> chosen = named.isEmpty() ? List.of("transformer", "minilm") : named;
        double peak = gemmPeakGflops(2048);
        StringBuilder report = new StringBuilder(String.format(Locale.ROOT,
                "ND4J backend %s; %d native thread%s (peft4j.threads), OpenBLAS kernels: %s. Single-GEMM peak (2048 × 2048 × 2048, fp32, "
                        + "Nd4j.gemm into a preallocated output): %.1f GFLOP/s%n", Nd4j.getBackend().getClass().getSimpleName(), threads, threads == 1 ? "" : "s",
                Optional.ofNullable(System.getenv(OpenBlasKernels.CORETYPE_VARIABLE))
                        .map(kernels -> OpenBlasKernels.CORETYPE_VARIABLE + "=" + kernels).orElse("as detected"), peak));
        for (String name : chosen) {
            Workload workload = switch (name) {
                case "transformer" -> new SampleTransformerWorkload();
                case "minilm" -> new MiniLmWorkload();
                default -> throw new IllegalArgumentException("Unknown workload '" + name + "': use transformer or minilm");
            };
            List<Row> rows = measure(workload, profile);
            report.append(String.format(Locale.ROOT, "%n### %s%n%n", workload.description()));
            appendTable(report, rows, peak);
            appendPyTorchComparison(report, rows, workload, threads);
            for (Row row : rows) {
                if (row.profile() != null) {
                    report.append(String.format(Locale.ROOT, "%nWhere the time goes, %s:%n%n%s", row.what(), row.profile()));
                }
            }
            System.out.println(report);
        }
        Files.createDirectories(Path.of("target"));
        Files.writeString(Path.of("target", "benchmark.md"), report.toString());
    }

    private static List<Row> measure(Workload workload, boolean profile) {
        List<Row> rows = new ArrayList<>();
        rows.add(trainingStep(workload, "training step: full fine-tuning", Method.FULL, profile));
        rows.add(trainingStep(workload, "training step: LoRA (r = 8, q and v)", Method.LORA, profile));
        rows.add(trainingStep(workload, "training step: bottleneck adapter (Pfeiffer)", Method.ADAPTER, profile));

        Model base = workload.create(Method.BASE);
        String baseOutput = base.buildGraph();
        Forward baseForward = new Forward("forward: base model", base, baseOutput, true);
        Forward baseInSameDiff = new Forward("forward: base model, in SameDiff's executor", base, baseOutput, false);
        Model lora = workload.create(Method.LORA);
        LoraAdapter.of(lora.peft()).layerViews().forEach(layer -> layer.weights().b().assign(0.01));
        String unmergedOutput = lora.buildGraph();
        lora.peft().merge();
        // The unmerged graph still runs its branches after merge() (with B = 0): same cost, other values.
        Forward unmerged = new Forward("forward: LoRA unmerged", lora, unmergedOutput, true);
        Forward merged = new Forward("forward: LoRA merged", lora, lora.buildGraph(), true);
        Model adapter = workload.create(Method.ADAPTER);
        Forward adapterForward = new Forward("forward: bottleneck adapter", adapter, adapter.buildGraph(), true);
        rows.addAll(forwardsInTurn(workload, List.of(baseForward, baseInSameDiff, unmerged, merged, adapterForward)));
        return rows;
    }

    /**
     * A forward graph to time: {@code output} of {@code model}'s SameDiff, replayed by a
     * {@link RecordedInference} (what peft4j offers for inference) or run by {@code SameDiff.output}.
     */
    private record Forward(String what, Model model, String output, RecordedInference replay) {
        Forward(String what, Model model, String output, boolean replayed) {
            this(what, model, output, replayed ? RecordedInference.of(model.sameDiff(), output) : null);
        }

        void run(Map<String, INDArray> feed) {
            if (replay != null) {
                replay.output(feed);
            } else {
                model.sameDiff().output(feed, output);
            }
        }
    }

    private static Row trainingStep(Workload workload, String what, Method method, boolean profile) {
        Model model = workload.create(method);
        model.buildGraph();
        OpTimes opTimes = profile ? new OpTimes(WARMUP, profileByShape) : null;
        if (opTimes != null) {
            model.sameDiff().addListeners(opTimes);
        }
        int steps = WARMUP + REPEATS;
        TrainingReport report;
        long peakMemory;
        try (PeakMemory memory = new PeakMemory()) {
            SingletonMultiDataSetIterator data = new SingletonMultiDataSetIterator(workload.batch());
            ProgressListener silent = new ProgressListener(null, steps);
            report = model.peft() != null ? model.peft().train(workload.trainingConfig(), data, steps, silent)
                    : SameDiffTrainer.fit(model.sameDiff(), workload.trainingConfig(), data, steps, silent);
            peakMemory = memory.peakBytes() / (1024 * 1024);
        }
        double[] measured = Arrays.copyOfRange(report.stepSeconds(), WARMUP, steps);
        return row(what, measured, 3 * workload.forwardFlops(), peakMemory, optimizerStateBytes(model.sameDiff()),
                opTimes != null ? opTimes.table() : null);
    }

    /** Bytes of the optimizer's per-variable state (Adam: two moments per trainable element). */
    private static long optimizerStateBytes(SameDiff sd) {
        long bytes = 0;
        for (GradientUpdater<?> updater : sd.getUpdaterMap().values()) {
            for (INDArray state : updater.getState().values()) {
                bytes += state.length() * state.dataType().width();
            }
        }
        return bytes;
    }

    /**
     * Times the forward passes round-robin, one pass of each per round, so that drift in the process
     * (heap growth, caches, the machine) reaches every graph alike: timed one after another, the
     * merged graph, which is the base graph, measured from 5 % faster to 8 % slower than the base.
     */
    private static List<Row> forwardsInTurn(Workload workload, List<Forward> forwards) {
        List<Map<String, INDArray>> feeds = new ArrayList<>();
        for (Forward forward : forwards) {
            Map<String, INDArray> feed = forward.model().features(workload.batch());
            feeds.add(feed);
            for (int i = 0; i < WARMUP; i++) {
                forward.run(feed);
            }
        }
        double[][] seconds = new double[forwards.size()][REPEATS];
        for (int round = 0; round < REPEATS; round++) {
            for (int i = 0; i < forwards.size(); i++) {
                Forward forward = forwards.get(i);
                long start = System.nanoTime();
                forward.run(feeds.get(i));
                seconds[i][round] = (System.nanoTime() - start) / 1e9;
            }
        }
        List<Row> rows = new ArrayList<>();
        for (int i = 0; i < forwards.size(); i++) {
            rows.add(row(forwards.get(i).what(), seconds[i], workload.forwardFlops(), 0, 0, null));
        }
        return rows;
    }

    private static Row row(String what, double[] seconds, double flops, long peakMemoryMb, long optimizerStateBytes,
                           String profile) {
        double[] sorted = seconds.clone();
        Arrays.sort(sorted);
        double median = sorted[sorted.length / 2];
        return new Row(what, median, sorted[0], sorted[sorted.length - 1], flops / median / 1e9, peakMemoryMb, optimizerStateBytes, profile);
    }

    private static void appendTable(StringBuilder table, List<Row> rows, double peak) {
        table.append("| measurement | median (ms) | min – max (ms) | GFLOP/s | % of GEMM peak | peak memory (MB) | optimizer state (KB) |\n");
        table.append("|---|---:|---:|---:|---:|---:|---:|\n");
        for (Row row : rows) {
            table.append(String.format(Locale.ROOT, "| %s | %.1f | %.1f – %.1f | %.1f | %.0f %% | %s | %s |%n", row.what(),
                    row.median() * 1e3, row.min() * 1e3, row.max() * 1e3, row.gflops(), 100 * row.gflops() / peak,
                    row.peakMemoryMb() > 0 ? String.format(Locale.ROOT, "%,d", row.peakMemoryMb()) : "—",
                    row.what().startsWith("training") ? String.format(Locale.ROOT, "%,d", row.optimizerStateBytes() / 1024) : "—"));
        }
    }

    private static void appendPyTorchComparison(StringBuilder table, List<Row> rows, Workload workload, int threads) {
        Optional<JsonNode> reference;
        try {
            reference = PyTorchReference.run(workload.pytorchModel(), threads);
        } catch (IOException | InterruptedException e) {
            table.append(String.format(Locale.ROOT, "%nThe PyTorch reference failed: %s%n", e.getMessage()));
            return;
        }
        if (reference.isEmpty()) {
            table.append(String.format(Locale.ROOT, "%nNo Python with torch was found (apt-get install python3-torch); "
                    + "no PyTorch comparison.%n"));
            return;
        }
        JsonNode torch = reference.get();
        table.append(String.format(Locale.ROOT, "%nPyTorch %s (%s, %d thread%s; single-GEMM peak %.1f GFLOP/s, torch.mm), "
                        + "same model, shapes and run counts:%n%n", torch.path("torch").asText(), torch.path("python").asText(),
                torch.path("threads").asInt(), torch.path("threads").asInt() == 1 ? "" : "s", torch.path("gemm_gflops").asDouble()));
        table.append("| measurement | peft4j median (ms) | PyTorch median (ms) | PyTorch min – max (ms) | peft4j / PyTorch |\n");
        table.append("|---|---:|---:|---:|---:|\n");
        String[][] pairs = {{"training step: full fine-tuning", "full_step_ms"}, {"training step: LoRA (r = 8, q and v)", "lora_step_ms"},
                {"forward: base model", "forward_ms"}};
        for (String[] pair : pairs) {
            Row ours = rows.stream().filter(row -> row.what().equals(pair[0])).findFirst().orElseThrow();
            JsonNode theirs = torch.path(pair[1]);
            table.append(String.format(Locale.ROOT, "| %s | %.1f | %.1f | %.1f – %.1f | %.2f |%n", pair[0], ours.median() * 1e3,
                    theirs.path("median").asDouble(), theirs.path("min").asDouble(), theirs.path("max").asDouble(),
                    ours.median() * 1e3 / theirs.path("median").asDouble()));
        }
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
