package io.peft4j.samples.spam;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.IA3;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.Freezer;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingOptions;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.runtime.ia3.Ia3Config;
import io.peft4j.runtime.lora.LoraConfig;
import io.peft4j.runtime.method.MethodAdapter;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import io.peft4j.samples.PeakMemory;
import io.peft4j.samples.minilm.MiniLmTokenizer;
import io.peft4j.samples.minilm.OnnxInitializers;
import java.io.IOException;
import java.lang.annotation.Annotation;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;

/**
 * Fine-tunes the pretrained all-MiniLM-L6-v2 for spam classification on the SpamAssassin corpus with
 * each approach and writes a table (Markdown and JSON) and a PNG of the training curves to
 * {@code target/spam-comparison/<configuration>/}:
 * <ul>
 *   <li>{@code frozen}: frozen features and a linear classifier;</li>
 *   <li>{@code head}: the classifier and the last encoder layer ("fine-tuning I");</li>
 *   <li>{@code full}: every encoder layer and the classifier ("fine-tuning II"; the embeddings stay frozen,
 *       because ND4J 1.0.0-M2.1 cannot train through {@code gather});</li>
 *   <li>{@code lora}: LoRA r = 8 on query and value, plus the classifier;</li>
 *   <li>{@code lora+}: the same with B at 16 × the learning rate ({@code TrainingOptions.withLoraPlus});</li>
 *   <li>{@code dora}: DoRA on LoRA's layers and rank, plus the classifier;</li>
 *   <li>{@code ia3}: (IA)³ on PEFT's BERT layers (key, value, and the input of both output.dense), plus the classifier;</li>
 *   <li>{@code adapter}: a Pfeiffer bottleneck adapter after each feed-forward block, plus the classifier;</li>
 *   <li>{@code prefix}: 20 key/value prefixes in every self-attention, plus the classifier;</li>
 *   <li>{@code prompt}: 20 virtual tokens before the embeddings, plus the classifier.</li>
 * </ul>
 * Without arguments it runs a default configuration (frozen, LoRA, full; 768 training and 512 test
 * messages; 64 tokens; one epoch) that takes about 3.5 minutes on 2 cores; {@code --full} runs every method
 * on the whole split (4,221 training and 1,206 test messages), one epoch at 64 tokens. Method names as
 * arguments pick rows. Each configuration writes to its own folder ({@code default/}, {@code full/});
 * methods already in its {@code results.json} are not run again, so an interrupted comparison
 * resumes with the next method.
 */
public final class SpamComparison {

    /** What one run compares and on how much data. */
    public record Settings(String name, List<String> methods, int trainExamples, int testExamples, int maxLength, int batchSize,
                           int epochs, long seed) {

        static Settings quick() {
            return new Settings("default", List.of("frozen", "lora", "full"), 768, 512, 64, 16, 1, 42);
        }

        static Settings complete() {
            return new Settings("full", List.of("frozen", "head", "full", "lora", "lora+", "dora", "ia3", "adapter", "prefix", "prompt"),
                    0, 0, 64, 16, 1, 42);
        }

        /** Where this configuration's results go: runs of one configuration resume each other, never another's. */
        Path output() {
            return ROOT_OUTPUT.resolve(name);
        }
    }

    /** One row of the table. */
    public record Result(String method, double accuracy, double f1, long trainableParameters, long totalParameters,
                         double secondsPerEpoch, double secondsPerStep, long peakMemoryMb, long checkpointBytes,
                         double inferenceSeconds, double latencyRatio, double mergedLatencyRatio, double[] losses) {
    }

    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);
    private static final Path ROOT_OUTPUT = Path.of("target", "spam-comparison");
    /** PEFT's and the LoRA+ paper's suggested ratio of B's learning rate to A's. */
    private static final double LORA_PLUS_RATIO = 16;

    private final Path output;

    private SpamComparison(Path output) {
        this.output = output;
    }

    public static void main(String[] args) throws IOException {
        ComputeThreads.apply();
        Settings settings = Arrays.asList(args).contains("--full") ? Settings.complete() : Settings.quick();
        List<String> named = Arrays.stream(args).filter(arg -> !arg.startsWith("--")).toList();
        if (!named.isEmpty()) {
            settings = new Settings(settings.name(), named, settings.trainExamples(), settings.testExamples(), settings.maxLength(),
                    settings.batchSize(), settings.epochs(), settings.seed());
        }
        Files.createDirectories(settings.output());
        new SpamComparison(settings.output()).run(settings);
    }

    private void run(Settings settings) throws IOException {
        SpamAssassinCorpus.Loaded corpus = SpamAssassinCorpus.load(SpamAssassinCorpus.dataDirectory());
        System.out.printf(Locale.ROOT, "SpamAssassin: %d messages (%d spam), %d skipped as unreadable%n", corpus.emails().size(),
                corpus.spam(), corpus.skipped());
        SpamAssassinCorpus.Split split = SpamAssassinCorpus.split(corpus.emails(), settings.seed(), 0.7, 0.1);
        List<Email> train = settings.trainExamples() > 0 ? SpamAssassinCorpus.stratifiedSubset(split.train(), settings.trainExamples())
                : split.train();
        List<Email> test = settings.testExamples() > 0 ? SpamAssassinCorpus.stratifiedSubset(split.test(), settings.testExamples())
                : split.test();
        System.out.printf(Locale.ROOT, "split (seed %d): %d train, %d validation, %d test; this run trains on %d and tests on %d%n",
                settings.seed(), split.train().size(), split.validation().size(), split.test().size(), train.size(), test.size());
        SpamBatches trainBatches;
        SpamBatches testBatches;
        try (MiniLmTokenizer tokenizer = new MiniLmTokenizer()) {
            trainBatches = new SpamBatches(train, tokenizer, settings.maxLength(), settings.batchSize());
            testBatches = new SpamBatches(test, tokenizer, settings.maxLength(), settings.batchSize());
        }
        Map<String, INDArray> pretrained;
        try (InputStream onnx = SpamComparison.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
            pretrained = OnnxInitializers.read(onnx);
        }
        SpamGraph base = new SpamGraph(new SpamClassifier(SameDiff.create(), pretrained, settings.seed()));
        base.evaluate(testBatches); // warm-up: the first pass also compiles and allocates
        double baseSeconds = base.evaluate(testBatches).seconds();

        Path resultsFile = output.resolve("results.json");
        List<Result> results = new ArrayList<>(Files.exists(resultsFile)
                ? Arrays.asList(JSON.readValue(resultsFile.toFile(), Result[].class)) : List.of());
        for (String method : settings.methods()) {
            if (results.stream().anyMatch(result -> result.method().equals(method))) {
                System.out.println("== " + method + ": already in " + resultsFile + ", skipped (delete it to measure again) ==");
                continue;
            }
            System.out.println("== " + method + " ==");
            results.add(measure(method, settings, pretrained, trainBatches, testBatches, baseSeconds));
            JSON.writeValue(resultsFile.toFile(), results);
            Files.writeString(output.resolve("results.md"), table(results));
            Map<String, double[]> curves = new LinkedHashMap<>();
            results.forEach(result -> curves.put(result.method(), result.losses()));
            LossPlot.write(output.resolve("training-loss.png"), curves);
        }
        System.out.println(table(results));
    }

    private Result measure(String method, Settings settings, Map<String, INDArray> pretrained, SpamBatches trainBatches,
                           SpamBatches testBatches, double baseSeconds) {
        SpamClassifier model = new SpamClassifier(SameDiff.create(), pretrained, settings.seed());
        SameDiff sd = model.sameDiff();
        Class<? extends Annotation> annotation = switch (method) {
            case "lora", "lora+", "dora" -> LoRA.class;
            case "ia3" -> IA3.class;
            case "adapter" -> Adapter.class;
            case "prefix" -> PrefixTuning.class;
            case "prompt" -> PromptTuning.class;
            case "frozen", "head", "full" -> null;
            default -> throw new IllegalArgumentException("unknown method '" + method
                    + "': use frozen, head, full, lora, lora+, dora, ia3, adapter, prefix or prompt");
        };
        PeftModel peft = annotation == null ? null : peftBuilder(model, method, annotation).attach();
        long frozen = switch (method) {
            case "frozen" -> Freezer.freezeAllExcept(sd, name -> name.startsWith("classifier."));
            case "head" -> Freezer.freezeAllExcept(sd, name -> name.startsWith("classifier.") || name.startsWith("encoder.layer.5."));
            case "full" -> Freezer.freezeAllExcept(sd, name -> !name.startsWith("embeddings."));
            default -> 0;
        };
        SpamGraph graph = new SpamGraph(model);
        long trainable = peft != null ? peft.parameterCount().trainable() : Freezer.trainableParameters(sd);
        long total = peft != null ? peft.parameterCount().total() : trainable + frozen;
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(learningRate(method)))
                .dataSetFeatureMapping(SpamGraph.IDS, SpamGraph.TYPES, SpamGraph.MASK).dataSetLabelMapping(SpamGraph.LABELS).build();
        long steps = (long) trainBatches.size() * settings.epochs();
        ProgressListener progress = new ProgressListener(System.out, 8, steps);
        TrainingReport report;
        long peak;
        try (PeakMemory memory = new PeakMemory()) {
            trainBatches.reset();
            TrainingOptions options = method.equals("lora+") ? TrainingOptions.defaults().withLoraPlus(LORA_PLUS_RATIO)
                    : TrainingOptions.defaults();
            report = peft != null ? peft.train(config, trainBatches, settings.epochs(), progress, options)
                    : SameDiffTrainer.fit(sd, config, trainBatches, settings.epochs(), progress);
            peak = memory.peakBytes();
        }
        SpamGraph.Evaluation metrics = graph.evaluate(testBatches);
        double inferenceSeconds = graph.evaluate(testBatches).seconds(); // timed warm, like the base
        long checkpoint = checkpointBytes(method, model, peft);
        if (peft != null) {
            Path saved = output.resolve("checkpoints").resolve(method);
            System.out.println(method + " adapter reloaded from " + saved + " into a fresh all-MiniLM-L6-v2: "
                    + ReloadCheck.run(saved, pretrained, settings.seed(), testBatches, metrics.logits()));
        }
        double mergedRatio = Double.NaN;
        if (peft != null && peft.adapter("default").parts().stream().allMatch(MethodAdapter::mergeable)) {
            // As deployed: the saved adapter on a fresh base, merged before its graph is built, so the graph is the base's.
            SpamClassifier deployed = new SpamClassifier(SameDiff.create(), pretrained, settings.seed() + 1);
            PeftModel.fromPretrained(deployed, output.resolve("checkpoints").resolve(method)).merge();
            SpamGraph merged = new SpamGraph(deployed);
            merged.evaluate(testBatches);
            mergedRatio = merged.evaluate(testBatches).seconds() / baseSeconds;
        }
        Result result = new Result(method, metrics.accuracy(), metrics.f1(), trainable, total, report.seconds() / settings.epochs(),
                report.seconds() / report.steps(), peak / (1024 * 1024), checkpoint, inferenceSeconds, inferenceSeconds / baseSeconds,
                mergedRatio, report.losses());
        System.out.printf(Locale.ROOT, "%s: accuracy %.4f, F1 %.4f, %d trainable%n", method, result.accuracy(), result.f1(), trainable);
        return result;
    }

    /**
     * The adapter of {@code method}: LoRA, prefix, prompt and the bottleneck adapter as the model's annotations declare
     * them; DoRA on LoRA's layers with LoRA's rank; (IA)³ on PEFT's default BERT layers ({@code key}, {@code value} and
     * both {@code output.dense}, the latter rescaling their input, as PEFT's BERT mapping has it).
     */
    private static PeftModel.Builder peftBuilder(SpamClassifier model, String method, Class<? extends Annotation> annotation) {
        PeftModel.Builder builder = PeftModel.builder(model).only(annotation).alsoTrain("classifier").taskType("SEQ_CLS")
                .baseModel(SpamClassifier.BASE_MODEL);
        if (method.equals("dora")) {
            builder.config(LoraConfig.targeting("query", "value").rank(8).alpha(16).dora(true));
        } else if (method.equals("ia3")) {
            builder.config(Ia3Config.targeting("key", "value", "output.dense").feedforward("output.dense"));
        }
        return builder;
    }

    /** Adam steps that suit each approach: larger for fewer, newly initialised parameters. */
    private static double learningRate(String method) {
        return switch (method) {
            case "frozen" -> 1e-2;
            case "head" -> 1e-3;
            case "full" -> 1e-4;
            case "prefix", "prompt", "ia3" -> 1e-2;
            default -> 2e-3;
        };
    }

    private long checkpointBytes(String method, SpamClassifier model, PeftModel peft) {
        Path directory = output.resolve("checkpoints").resolve(method);
        try {
            Files.createDirectories(directory);
            if (peft != null) {
                peft.save(directory);
            } else {
                Map<String, INDArray> trainable = new LinkedHashMap<>();
                model.sameDiff().variables().stream().filter(v -> v.getVariableType() == VariableType.VARIABLE)
                        .forEach(v -> trainable.put(v.name(), v.getArr()));
                SafetensorsFile.write(directory.resolve("model.safetensors"), trainable, TensorDtype.F32, Map.of("format", "pt"));
            }
            try (Stream<Path> files = Files.list(directory)) {
                return files.filter(Files::isRegularFile).mapToLong(file -> file.toFile().length()).sum();
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    static String table(List<Result> results) {
        StringBuilder table = new StringBuilder("| method | test accuracy | test F1 | trainable params | trainable % | s / epoch | s / step "
                + "| peak memory (MB) | checkpoint (bytes) | inference vs base | merged vs base |\n"
                + "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Result r : results) {
            boolean merged = r.mergedLatencyRatio() > 0;
            table.append(String.format(Locale.ROOT, "| %s | %.4f | %.4f | %,d | %.2f | %.1f | %.2f | %,d | %,d | %.2f× | %s |%n", r.method(),
                    r.accuracy(), r.f1(), r.trainableParameters(), 100.0 * r.trainableParameters() / r.totalParameters(),
                    r.secondsPerEpoch(), r.secondsPerStep(), r.peakMemoryMb(), r.checkpointBytes(), r.latencyRatio(),
                    merged ? String.format(Locale.ROOT, "%.2f×", r.mergedLatencyRatio()) : "—"));
        }
        return table.toString();
    }
}
