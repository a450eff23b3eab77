package io.peft4j.samples.benchmark;

import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.RecordedInference;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.samples.benchmark.Workload.Method;
import io.peft4j.samples.benchmark.Workload.Model;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Locale;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;

/**
 * Training steps replayed from a recording against steps in SameDiff's executor
 * ({@link SameDiffTrainer#RECORDED_STEPS}), in one process: two copies of a model trained from the
 * same weights on the same batch, in turn, a block of {@value #STEPS_PER_BLOCK} steps each (one
 * {@code train} call, so the replaying copy runs its first two steps in SameDiff and records the
 * second; only steps 3 onward of each block are timed, and the first block of each is warm-up).
 * Prints medians, minimums, the ratio, and the largest difference between the two copies'
 * parameters afterwards (replayed steps must compute SameDiff's values, so 0).
 *
 * <p>With {@code kernels}, both copies replay and the comparison is libnd4j's kernels against
 * peft4j's vector kernels ({@link SameDiffTrainer#VECTOR_KERNELS}; the JVM needs
 * {@code --add-modules jdk.incubator.vector}, as the samples' JVMs have); the parameters then differ
 * by the kernels' rounding.
 *
 * <p>With {@code fused}, both copies replay with peft4j's kernels, the first running every op of
 * BERT's written-out exact GELU and its gradient, of a LayerNorm written out, and of attention and its
 * gradient on its own ({@link SameDiffTrainer#FUSED_KERNELS} false), the second one pass per group;
 * the parameters then end identical (the same IEEE operations in the same order, the exponential
 * included, in every JIT tier).
 *
 * <p>With {@code products}, both copies replay with peft4j's kernels, the first leaving matrix
 * products of arrays of rank 3 or more (attention's) to libnd4j ({@link SameDiffTrainer#PRODUCT_KERNELS}
 * false), the second running them in peft4j's kernels; the parameters then differ by the products'
 * rounding.
 *
 * <p>With {@code optimizer}, both copies replay with peft4j's kernels, the first updating the
 * parameters with libnd4j's Adam ({@link SameDiffTrainer#OPTIMIZER_KERNELS} false), the second with
 * peft4j's one-pass kernel; the parameters then agree bit for bit.
 *
 * <p>With {@code forward}, the base model's forward pass instead of training steps: two
 * {@link RecordedInference}s of one graph recorded the two ways (for the plain comparison, SameDiff's
 * executor against a replay), blocks of passes in turn.
 *
 * <p>Arguments: {@code transformer} (default) or {@code minilm}; {@code full}, {@code lora} (default)
 * or {@code adapter}, or {@code forward}; {@code kernels}, {@code fused}, {@code products} or {@code optimizer}; the number of blocks
 * (default 5).
 */
public final class ReplayBenchmark {
    private static final int STEPS_PER_BLOCK = 6;
    private static final int UNTIMED_STEPS = 2;

    public static void main(String[] args) {
        int threads = ComputeThreads.apply();
        List<String> given = Arrays.asList(args);
        Workload workload = given.contains("minilm") ? new MiniLmWorkload() : new SampleTransformerWorkload();
        Method method = given.contains("full") ? Method.FULL : given.contains("adapter") ? Method.ADAPTER : Method.LORA;
        int blocks = given.stream().filter(arg -> arg.matches("\\d+")).mapToInt(Integer::parseInt).findFirst().orElse(5);
        Comparison comparison = given.contains("kernels") ? Comparison.KERNELS : given.contains("fused") ? Comparison.FUSION
                : given.contains("products") ? Comparison.PRODUCTS : given.contains("optimizer") ? Comparison.OPTIMIZER : Comparison.REPLAY;
        if (given.contains("forward")) {
            forwardPasses(workload, comparison, blocks, threads);
            return;
        }
        Model[] models = {workload.create(method), workload.create(method)};
        for (Model model : models) {
            model.buildGraph();
        }
        List<List<Double>> times = List.of(new ArrayList<>(), new ArrayList<>());
        for (int block = 0; block < blocks; block++) {
            for (int copy = 0; copy < 2; copy++) {
                double[] seconds = trainBlock(models[copy], workload, copy == 1, comparison);
                for (int step = UNTIMED_STEPS; block > 0 && step < seconds.length; step++) {
                    times.get(copy).add(seconds[step] * 1e3);
                }
            }
        }
        System.out.printf(Locale.ROOT, "%s; %s training steps; %d native thread%s; %d blocks of %d steps, in turn%n%n",
                workload.description(), method, threads, threads == 1 ? "" : "s", blocks, STEPS_PER_BLOCK);
        System.out.println("| steps | median (ms) | min (ms) | timed steps |");
        System.out.println("|---|---:|---:|---:|");
        double[] medians = new double[2];
        for (int copy = 0; copy < 2; copy++) {
            double[] sorted = times.get(copy).stream().mapToDouble(Double::doubleValue).sorted().toArray();
            medians[copy] = sorted[sorted.length / 2];
            String label = comparison.labels[copy];
            System.out.printf(Locale.ROOT, "| %s | %.1f | %.1f | %d |%n", label, medians[copy], sorted[0], sorted.length);
        }
        System.out.printf(Locale.ROOT, "%n%s: %.2f; max |parameter difference| between the copies: %s%n",
                comparison.ratio, medians[1] / medians[0], largestDifference(models));
    }

    /** What the two copies differ in: the first copy runs without it, the second with it. */
    private enum Comparison {
        REPLAY("replayed / SameDiff", "in SameDiff's executor", "replayed"),
        KERNELS("vector kernels / libnd4j's", "replayed, libnd4j's kernels", "replayed, peft4j's vector kernels"),
        FUSION("fused / op by op", "replayed, peft4j's kernels op by op", "replayed, peft4j's kernels, exact GELU, LayerNorm and attention fused"),
        PRODUCTS("peft4j's / libnd4j's batched products", "replayed, peft4j's kernels, batched products in libnd4j",
                "replayed, peft4j's kernels and batched products"),
        OPTIMIZER("Adam in peft4j's kernel / in libnd4j", "replayed, peft4j's kernels, Adam in libnd4j", "replayed, peft4j's kernels and Adam's kernel");

        final String ratio;
        final String[] labels;

        Comparison(String ratio, String first, String second) {
            this.ratio = ratio;
            this.labels = new String[] {first, second};
        }
    }

    /** Forward passes of the base model, recorded the two ways, in blocks taking turns; prints as {@link #main} does. */
    private static void forwardPasses(Workload workload, Comparison comparison, int blocks, int threads) {
        Model model = workload.create(Method.BASE);
        String output = model.buildGraph();
        Map<String, INDArray> feed = model.features(workload.batch());
        RecordedInference[] replays = new RecordedInference[2];
        for (int copy = 0; copy < 2; copy++) {
            if (copy == 0 && comparison == Comparison.REPLAY) {
                continue; // SameDiff's executor
            }
            setUp(copy == 1, comparison);
            try {
                replays[copy] = RecordedInference.of(model.sameDiff(), output);
                replays[copy].output(feed);
                replays[copy].output(feed); // the second call with these shapes records
            } finally {
                clear();
            }
        }
        List<List<Double>> times = List.of(new ArrayList<>(), new ArrayList<>());
        INDArray[] last = new INDArray[2];
        for (int block = 0; block < blocks; block++) {
            for (int copy = 0; copy < 2; copy++) {
                for (int pass = 0; pass < STEPS_PER_BLOCK; pass++) {
                    long start = System.nanoTime();
                    INDArray result = replays[copy] != null ? replays[copy].output(feed).get(output) : model.sameDiff().output(feed, output).get(output);
                    if (block > 0 && pass >= UNTIMED_STEPS) {
                        times.get(copy).add((System.nanoTime() - start) / 1e6);
                    }
                    // a copy: both recordings of one graph may write their output into the same array
                    last[copy] = result.dup();
                }
            }
        }
        System.out.printf(Locale.ROOT, "%s; forward passes of the base model; %d native thread%s; %d blocks of %d passes, in turn%n%n",
                workload.description(), threads, threads == 1 ? "" : "s", blocks, STEPS_PER_BLOCK);
        System.out.println("| passes | median (ms) | min (ms) | timed passes |");
        System.out.println("|---|---:|---:|---:|");
        double[] medians = new double[2];
        for (int copy = 0; copy < 2; copy++) {
            double[] sorted = times.get(copy).stream().mapToDouble(Double::doubleValue).sorted().toArray();
            medians[copy] = sorted[sorted.length / 2];
            System.out.printf(Locale.ROOT, "| %s | %.1f | %.1f | %d |%n", comparison.labels[copy], medians[copy], sorted[0], sorted.length);
        }
        System.out.printf(Locale.ROOT, "%n%s: %.2f; max |output difference| between the two: %s%n", comparison.ratio, medians[1] / medians[0],
                last[0].sub(last[1]).amaxNumber().doubleValue());
    }

    private static void setUp(boolean second, Comparison comparison) {
        System.setProperty(SameDiffTrainer.RECORDED_STEPS, Boolean.toString(second || comparison != Comparison.REPLAY));
        System.setProperty(SameDiffTrainer.VECTOR_KERNELS, Boolean.toString(second || comparison != Comparison.KERNELS));
        System.setProperty(SameDiffTrainer.FUSED_KERNELS, Boolean.toString(second || comparison != Comparison.FUSION));
        System.setProperty(SameDiffTrainer.PRODUCT_KERNELS, Boolean.toString(second || comparison != Comparison.PRODUCTS));
        System.setProperty(SameDiffTrainer.OPTIMIZER_KERNELS, Boolean.toString(second || comparison != Comparison.OPTIMIZER));
    }

    private static void clear() {
        System.clearProperty(SameDiffTrainer.RECORDED_STEPS);
        System.clearProperty(SameDiffTrainer.VECTOR_KERNELS);
        System.clearProperty(SameDiffTrainer.FUSED_KERNELS);
        System.clearProperty(SameDiffTrainer.PRODUCT_KERNELS);
        System.clearProperty(SameDiffTrainer.OPTIMIZER_KERNELS);
    }

    /** A block of steps of the first copy or the {@code second}, set up as {@code comparison} says. */
    private static double[] trainBlock(Model model, Workload workload, boolean second, Comparison comparison) {
        setUp(second, comparison);
        try {
            SingletonMultiDataSetIterator data = new SingletonMultiDataSetIterator(workload.batch());
            ProgressListener silent = new ProgressListener(null, STEPS_PER_BLOCK);
            TrainingReport report = model.peft() != null ? model.peft().train(workload.trainingConfig(), data, STEPS_PER_BLOCK, silent)
                    : SameDiffTrainer.fit(model.sameDiff(), workload.trainingConfig(), data, STEPS_PER_BLOCK, silent);
            return report.stepSeconds();
        } finally {
            clear();
        }
    }

    private static double largestDifference(Model[] models) {
        double largest = 0;
        for (SDVariable variable : models[0].sameDiff().variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                largest = Math.max(largest, variable.getArr().sub(models[1].sameDiff().getArrForVarName(variable.name())).amaxNumber().doubleValue());
            }
        }
        return largest;
    }
}
