package io.peft4j.samples.benchmark;

import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.samples.benchmark.Workload.Method;
import io.peft4j.samples.benchmark.Workload.Model;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.VariableType;
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
 * <p>Arguments: {@code transformer} (default) or {@code minilm}; {@code full}, {@code lora} (default)
 * or {@code adapter}; {@code kernels}; the number of blocks (default 5).
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
        boolean kernels = given.contains("kernels");
        Model[] models = {workload.create(method), workload.create(method)};
        for (Model model : models) {
            model.buildGraph();
        }
        List<List<Double>> times = List.of(new ArrayList<>(), new ArrayList<>());
        for (int block = 0; block < blocks; block++) {
            for (int copy = 0; copy < 2; copy++) {
                double[] seconds = trainBlock(models[copy], workload, copy == 1, kernels);
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
            String label = kernels ? (copy == 0 ? "replayed, libnd4j's kernels" : "replayed, peft4j's vector kernels")
                    : copy == 0 ? "in SameDiff's executor" : "replayed";
            System.out.printf(Locale.ROOT, "| %s | %.1f | %.1f | %d |%n", label, medians[copy], sorted[0], sorted.length);
        }
        System.out.printf(Locale.ROOT, "%n%s: %.2f; max |parameter difference| between the copies: %s%n",
                kernels ? "vector kernels / libnd4j's" : "replayed / SameDiff", medians[1] / medians[0], largestDifference(models));
    }

    /** A block of steps: of the second copy (replayed, or with peft4j's kernels when {@code kernels}) or the first. */
    private static double[] trainBlock(Model model, Workload workload, boolean second, boolean kernels) {
        System.setProperty(SameDiffTrainer.RECORDED_STEPS, Boolean.toString(second || kernels));
        System.setProperty(SameDiffTrainer.VECTOR_KERNELS, Boolean.toString(second || !kernels));
        try {
            SingletonMultiDataSetIterator data = new SingletonMultiDataSetIterator(workload.batch());
            ProgressListener silent = new ProgressListener(null, STEPS_PER_BLOCK);
            TrainingReport report = model.peft() != null ? model.peft().train(workload.trainingConfig(), data, STEPS_PER_BLOCK, silent)
                    : SameDiffTrainer.fit(model.sameDiff(), workload.trainingConfig(), data, STEPS_PER_BLOCK, silent);
            return report.stepSeconds();
        } finally {
            System.clearProperty(SameDiffTrainer.RECORDED_STEPS);
            System.clearProperty(SameDiffTrainer.VECTOR_KERNELS);
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
