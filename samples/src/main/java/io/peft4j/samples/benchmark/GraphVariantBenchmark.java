package io.peft4j.samples.benchmark;

import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.samples.benchmark.Workload.Method;
import io.peft4j.samples.benchmark.Workload.Model;
import io.peft4j.samples.transformer.LayerNorm;
import io.peft4j.samples.transformer.SelfAttention;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;

/**
 * Compares two builds of the same graph in one process: the sample transformer (the benchmark's
 * shapes) with one switch off and on: the samples' {@code fusedLayerNorm} (ND4J's {@code layer_norm})
 * and {@code fusedAttention} (its {@code dot_product_attention}), or the runtime's
 * {@code simplifyGraphs} ({@link SameDiffTrainer#SIMPLIFY_GRAPHS}). Both models train
 * from the same weights on the same batch, one step of each in turn, and then run forward passes in
 * turn, so that the drift this machine shows between and within runs reaches both alike; a
 * comparison of two separate runs could not tell a 5 % change from noise. Prints medians, minimums,
 * the ratio, and how far the two models' logits are apart after the same steps (the variants must
 * compute the same function).
 *
 * <p>Arguments: the switches to compare (default: all three), {@code --lora} to train LoRA instead of
 * full fine-tuning, {@code --minilm} for all-MiniLM-L6-v2 at the benchmark's shapes instead of the
 * sample transformer (only {@code simplifyGraphs} applies to it).
 */
public final class GraphVariantBenchmark {
    private static final int WARMUP = 3;
    private static final int ROUNDS = 20;
    private static final List<String> DEFAULT_SWITCHES = List.of("fusedLayerNorm", "fusedAttention", "simplifyGraphs");

    public static void main(String[] args) {
        int threads = ComputeThreads.apply();
        boolean lora = Arrays.asList(args).contains("--lora");
        boolean minilm = Arrays.asList(args).contains("--minilm");
        List<String> switches = Arrays.stream(args).filter(arg -> !arg.startsWith("--")).toList();
        if (switches.isEmpty()) {
            switches = DEFAULT_SWITCHES;
        }
        Workload workload = minilm ? new MiniLmWorkload() : new SampleTransformerWorkload();
        System.out.printf(Locale.ROOT, "%s; %d native thread%s; %s training steps and forward passes in turn, %d rounds after %d warm-up%n%n",
                workload.description(), threads, threads == 1 ? "" : "s", lora ? "LoRA" : "full fine-tuning", ROUNDS, WARMUP);
        System.out.println("| switch | measurement | off: median (min) ms | on: median (min) ms | on / off | max |logit difference| |");
        System.out.println("|---|---|---:|---:|---:|---:|");
        for (String name : switches) {
            compare(workload, name, property(name), lora ? Method.LORA : Method.FULL);
        }
    }

    private static String property(String name) {
        return switch (name) {
            case "fusedLayerNorm" -> LayerNorm.FUSED_PROPERTY;
            case "fusedAttention" -> SelfAttention.FUSED_PROPERTY;
            case "simplifyGraphs" -> SameDiffTrainer.SIMPLIFY_GRAPHS;
            default -> throw new IllegalArgumentException("Unknown switch '" + name
                    + "': use fusedLayerNorm, fusedAttention or simplifyGraphs");
        };
    }

    private static void compare(Workload workload, String name, String property, Method method) {
        List<Model> models = new ArrayList<>();
        List<String> outputs = new ArrayList<>();
        for (boolean on : new boolean[] {false, true}) {
            System.setProperty(property, Boolean.toString(on));
            try {
                Model model = workload.create(method);
                outputs.add(model.buildGraph());
                models.add(model);
            } finally {
                System.clearProperty(property);
            }
        }
        double[][] steps = new double[2][ROUNDS];
        double[][] forwards = new double[2][ROUNDS];
        Map<String, INDArray> features = models.get(0).features(workload.batch());
        for (int round = 0; round < WARMUP + ROUNDS; round++) {
            for (int i = 0; i < 2; i++) {
                Model model = models.get(i);
                long start = System.nanoTime();
                // the runtime's switches take effect when training is set up, the samples' when the graph is built
                System.setProperty(property, Boolean.toString(i == 1));
                try {
                    trainOneStep(model, workload);
                } finally {
                    System.clearProperty(property);
                }
                long trained = System.nanoTime();
                model.sameDiff().output(features, outputs.get(i));
                long forwarded = System.nanoTime();
                if (round >= WARMUP) {
                    steps[i][round - WARMUP] = (trained - start) / 1e6;
                    forwards[i][round - WARMUP] = (forwarded - trained) / 1e6;
                }
            }
        }
        INDArray off = models.get(0).sameDiff().output(features, outputs.get(0)).get(outputs.get(0));
        INDArray on = models.get(1).sameDiff().output(features, outputs.get(1)).get(outputs.get(1));
        double difference = off.sub(on).amaxNumber().doubleValue();
        row(name, method == Method.LORA ? "LoRA training step" : "full training step", steps, difference);
        row(name, "forward", forwards, difference);
    }

    /** The first call sets training up as peft4j does (freezing, pruning, updaters); later ones are single steps of the same graph. */
    private static void trainOneStep(Model model, Workload workload) {
        SingletonMultiDataSetIterator data = new SingletonMultiDataSetIterator(workload.batch());
        if (model.sameDiff().getTrainingConfig() == null) {
            ProgressListener silent = new ProgressListener(null, 1);
            if (model.peft() != null) {
                model.peft().train(workload.trainingConfig(), data, 1, silent);
            } else {
                SameDiffTrainer.fit(model.sameDiff(), workload.trainingConfig(), data, 1, silent);
            }
        } else {
            model.sameDiff().fit(data, 1);
        }
    }

    private static void row(String name, String what, double[][] times, double difference) {
        double[] off = times[0].clone();
        double[] on = times[1].clone();
        Arrays.sort(off);
        Arrays.sort(on);
        System.out.printf(Locale.ROOT, "| %s | %s | %.1f (%.1f) | %.1f (%.1f) | %.2f | %.2g |%n", name, what, off[ROUNDS / 2], off[0],
                on[ROUNDS / 2], on[0], on[ROUNDS / 2] / off[ROUNDS / 2], difference);
    }
}
