package io.peft4j.samples;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.IA3;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import java.lang.annotation.Annotation;
import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.ParameterCount;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingOptions;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.runtime.ia3.Ia3Config;
import io.peft4j.runtime.lora.LoraConfig;
import io.peft4j.samples.transformer.TransformerClassifier;
import io.peft4j.samples.transformer.TransformerConfig;
import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.learning.config.Adam;

/**
 * Adapts the same trained transformer to {@link KeywordTask}'s shifted task with each PEFT method
 * its classes declare (LoRA on query/value, a Pfeiffer bottleneck adapter after each feed-forward
 * block, prefix tuning of each attention, prompt tuning of the embedding), LoRA+ (LoRA with B at 16 ×
 * the learning rate), DoRA (the same layers and rank as LoRA), (IA)³ (PEFT's recipe: key, value and
 * the feed-forward output projection's input) and with full fine-tuning, and prints a table: trainable
 * parameters, accuracy before and after, training time per step, and inference latency relative to the
 * base model (unmerged, and merged for the methods that merge).
 *
 * <p>Arguments select rows: {@code full lora lora+ dora ia3 adapter prefix prompt} (default: all). The
 * table is also written to {@code target/method-comparison.md}.
 */
public final class MethodComparison {

    /** One row of the table. */
    public record Row(String method, ParameterCount parameters, double accuracyBefore, double accuracyAfter,
                      double secondsPerStep, double latencyRatio) {
    }

    private static final int LATENCY_REPEATS = 21;
    private static final int PASSES_PER_SAMPLE = 3;
    private static final double PROMPT_LEARNING_RATE = 3e-2;
    /** PEFT's and the LoRA+ paper's suggested ratio of B's learning rate to A's. */
    private static final double LORA_PLUS_RATIO = 16;

    public static void main(String[] args) {
        ComputeThreads.apply();
        List<String> methods = args.length == 0 ? List.of("full", "lora", "lora+", "dora", "ia3", "adapter", "prefix", "prompt") : Arrays.asList(args);
        List<Row> rows = run(LoraDemo.Settings.standard(), methods, System.out);
        String table = table(rows);
        System.out.println(table);
        try {
            Files.createDirectories(Path.of("target"));
            Files.writeString(Path.of("target", "method-comparison.md"), table);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public static List<Row> run(LoraDemo.Settings settings, List<String> methods, PrintStream out) {
        TransformerConfig config = settings.model();
        KeywordTask task = new KeywordTask(config.classes(), config.vocabulary(), config.sequenceLength());
        DataSet baseTrain = task.generate(settings.trainExamples(), false, settings.seed());
        DataSet shiftedTrain = task.generate(settings.trainExamples(), true, settings.seed() + 2);
        DataSet shiftedTest = task.generate(settings.testExamples(), true, settings.seed() + 3);

        out.println("== base model: full training on the base task ==");
        TransformerClassifier base = new TransformerClassifier(SameDiff.create(), config, settings.seed());
        LoraDemo.Graph baseGraph = LoraDemo.Graph.build(base);
        SameDiffTrainer.fit(base.sameDiff(), training(settings.baseLearningRate()), new BatchIterator(baseTrain, settings.batchSize()),
                settings.baseEpochs(), quietProgress());
        Map<String, INDArray> pretrained = base.parameters();

        List<Row> rows = new ArrayList<>();
        for (String method : methods) {
            out.println("== " + method + " ==");
            TransformerClassifier model = new TransformerClassifier(SameDiff.create(), config, settings.seed());
            model.load(pretrained);
            if (method.equals("full")) {
                LoraDemo.Graph graph = LoraDemo.Graph.build(model);
                long parameters = model.parameters().values().stream().mapToLong(INDArray::length).sum();
                double before = graph.accuracy(shiftedTest);
                TrainingReport report = SameDiffTrainer.fit(model.sameDiff(), training(settings.baseLearningRate()),
                        new BatchIterator(shiftedTrain, settings.batchSize()), settings.loraEpochs(), quietProgress());
                rows.add(new Row("full fine-tuning", new ParameterCount(parameters, parameters), before,
                        graph.accuracy(shiftedTest), report.seconds() / report.steps(),
                        relativeLatency(baseGraph, graph, shiftedTest.getFeatures())));
            } else {
                Class<? extends Annotation> peftMethod = switch (method) {
                    case "lora", "lora+", "dora" -> LoRA.class;
                    case "ia3" -> IA3.class;
                    case "adapter" -> Adapter.class;
                    case "prefix" -> PrefixTuning.class;
                    case "prompt" -> PromptTuning.class;
                    default -> throw new IllegalArgumentException("unknown method '" + method
                            + "': use full, lora, lora+, dora, ia3, adapter, prefix or prompt");
                };
                PeftModel.Builder builder = PeftModel.builder(model).only(peftMethod);
                if (method.equals("dora")) {
                    builder.config(LoraConfig.targeting("query", "value").rank(8).alpha(16).dora(true));
                } else if (method.equals("ia3")) {
                    // PEFT's (IA)³ recipe for decoder and encoder blocks alike: keys, values, and the feed-forward output's input.
                    builder.config(Ia3Config.targeting("key", "value", "down").feedforward("down"));
                }
                PeftModel peft = builder.attach();
                LoraDemo.Graph graph = LoraDemo.Graph.build(model);
                ParameterCount parameters = peft.parameterCount();
                double before = graph.accuracy(shiftedTest);
                TrainingOptions options = method.equals("lora+") ? TrainingOptions.defaults().withLoraPlus(LORA_PLUS_RATIO)
                        : TrainingOptions.defaults();
                TrainingReport report = peft.train(training(learningRate(peftMethod, settings)),
                        new BatchIterator(shiftedTrain, settings.batchSize()), settings.loraEpochs(), quietProgress(), options);
                double after = graph.accuracy(shiftedTest);
                rows.add(new Row(method, parameters, before, after, report.seconds() / report.steps(),
                        relativeLatency(baseGraph, graph, shiftedTest.getFeatures())));
                if (peftMethod == LoRA.class || peftMethod == IA3.class) {
                    peft.merge();
                    LoraDemo.Graph merged = LoraDemo.Graph.build(model);
                    rows.add(new Row(method + " (merged)", parameters, before, merged.accuracy(shiftedTest), Double.NaN,
                            relativeLatency(baseGraph, merged, shiftedTest.getFeatures())));
                }
            }
            out.println(rows.get(rows.size() - 1));
        }
        return rows;
    }

    private static ProgressListener quietProgress() {
        return new ProgressListener(System.out, 128);
    }

    private static TrainingConfig training(double learningRate) {
        return TrainingConfig.builder().updater(new Adam(learningRate))
                .dataSetFeatureMapping(LoraDemo.Graph.TOKENS).dataSetLabelMapping(LoraDemo.Graph.LABELS).build();
    }

    /**
     * Prompt and prefix tuning and (IA)³ train few parameters (far from the output, or multiplicative
     * and starting at one) and want a larger step, as in their papers; {@code -Dpeft4j.comparison.lr=...} overrides every method's rate.
     */
    private static double learningRate(Class<? extends Annotation> method, LoraDemo.Settings settings) {
        String override = System.getProperty("peft4j.comparison.lr");
        if (override != null) {
            return Double.parseDouble(override);
        }
        return method == LoRA.class || method == Adapter.class ? settings.loraLearningRate() : PROMPT_LEARNING_RATE;
    }

    /**
     * The median time of a forward pass over {@code tokens} through {@code graph}, divided by the
     * base model's; the two are timed alternately, after warm-up, so that both see the same machine.
     */
    static double relativeLatency(LoraDemo.Graph base, LoraDemo.Graph graph, INDArray tokens) {
        for (int i = 0; i < 3; i++) {
            base.logits(tokens);
            graph.logits(tokens);
        }
        double[] baseSeconds = new double[LATENCY_REPEATS];
        double[] seconds = new double[LATENCY_REPEATS];
        for (int i = 0; i < LATENCY_REPEATS; i++) {
            baseSeconds[i] = time(base, tokens);
            seconds[i] = time(graph, tokens);
        }
        return median(seconds) / median(baseSeconds);
    }

    private static double time(LoraDemo.Graph graph, INDArray tokens) {
        long start = System.nanoTime();
        for (int pass = 0; pass < PASSES_PER_SAMPLE; pass++) {
            graph.logits(tokens);
        }
        return (System.nanoTime() - start) / 1e9 / PASSES_PER_SAMPLE;
    }

    private static double median(double[] values) {
        double[] sorted = values.clone();
        Arrays.sort(sorted);
        return sorted[sorted.length / 2];
    }

    static String table(List<Row> rows) {
        StringBuilder table = new StringBuilder(
                "| method | trainable params | trainable % | accuracy before | accuracy after | s / training step | inference latency vs base |\n"
                        + "|---|---:|---:|---:|---:|---:|---:|\n");
        for (Row row : rows) {
            table.append(String.format(Locale.ROOT, "| %s | %,d | %.2f | %.4f | %.4f | %s | %.2f× |%n", row.method(),
                    row.parameters().trainable(), row.parameters().trainablePercent(), row.accuracyBefore(), row.accuracyAfter(),
                    Double.isNaN(row.secondsPerStep()) ? "—" : String.format(Locale.ROOT, "%.3f", row.secondsPerStep()),
                    row.latencyRatio()));
        }
        return table.toString();
    }
}
