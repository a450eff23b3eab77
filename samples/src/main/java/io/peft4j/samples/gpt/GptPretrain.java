package io.peft4j.samples.gpt;

import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.samples.BatchIterator;
import io.peft4j.samples.data.DataCache;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Locale;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.dataset.DataSet;

/**
 * Pretrains the byte-level {@link GptModel} on Moby-Dick and saves it as the base that the
 * adaptation and generation commands reuse ({@code .cache/gpt/base.safetensors}).
 *
 * <p>Arguments: {@code --steps N} (default 700), {@code --batch N} (16), {@code --lr X} (1e-3),
 * {@code --out FILE}, {@code --force} (retrain although the base exists).
 */
public final class GptPretrain {

    /** What the pretraining run does. */
    public record Settings(GptConfig config, int steps, int batchSize, double learningRate, long seed, int heldOutWindows) {
    }

    private GptPretrain() {
    }

    public static Path defaultBase() {
        return DataCache.root().resolve("gpt").resolve("base.safetensors");
    }

    public static void main(String[] args) {
        ComputeThreads.apply();
        Settings settings = new Settings(GptConfig.small(), 700, 16, 1e-3, 7, 256);
        Path out = defaultBase();
        boolean force = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--steps" -> settings = new Settings(settings.config(), Integer.parseInt(args[++i]), settings.batchSize(),
                        settings.learningRate(), settings.seed(), settings.heldOutWindows());
                case "--batch" -> settings = new Settings(settings.config(), settings.steps(), Integer.parseInt(args[++i]),
                        settings.learningRate(), settings.seed(), settings.heldOutWindows());
                case "--lr" -> settings = new Settings(settings.config(), settings.steps(), settings.batchSize(),
                        Double.parseDouble(args[++i]), settings.seed(), settings.heldOutWindows());
                case "--out" -> out = Path.of(args[++i]);
                case "--force" -> force = true;
                default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "': use --steps, --batch, --lr, --out, --force");
            }
        }
        if (Files.exists(out) && !force) {
            System.out.println("base model already at " + out + " (--force retrains it)");
            return;
        }
        pretrain(ByteCorpus.mobyDick(), settings, out);
    }

    /** Trains a fresh model on {@code corpus}, saves it to {@code out}, and returns its held-out bits per byte. */
    public static double pretrain(ByteCorpus corpus, Settings settings, Path out) {
        GptConfig config = settings.config();
        System.out.printf(Locale.ROOT, "%s: %,d training bytes in %d documents, %,d held out in %d%n", corpus.name(),
                corpus.trainBytes(), corpus.train().size(), corpus.heldOutBytes(), corpus.heldOut().size());
        GptModel model = new GptModel(SameDiff.create(), config, settings.seed());
        long parameters = model.parameters().values().stream().mapToLong(array -> array.length()).sum();
        System.out.printf(Locale.ROOT, "model: %s, %,d parameters%n", config, parameters);
        LanguageModelGraph graph = LanguageModelGraph.build(model, "lm", config.context());
        DataSet heldOut = Windows.consecutive(corpus.heldOut(), config.context(), settings.heldOutWindows());
        System.out.printf(Locale.ROOT, "held-out bits per byte before training: %.4f%n", graph.bitsPerByte(heldOut, 32));

        DataSet train = Windows.random(corpus.train(), settings.steps() * settings.batchSize(), config.context(), settings.seed());
        TrainingReport report = SameDiffTrainer.fit(model.sameDiff(), graph.training(settings.learningRate()),
                new BatchIterator(train, settings.batchSize()), 1, new ProgressListener(System.out, 25, settings.steps()));
        double bitsPerByte = graph.bitsPerByte(heldOut, 32);
        System.out.printf(Locale.ROOT, "held-out bits per byte after %d steps (%.1f min): %.4f%n", report.steps(), report.seconds() / 60,
                bitsPerByte);
        try {
            Files.createDirectories(out.toAbsolutePath().getParent());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        model.save(out);
        System.out.println("base model saved to " + out);
        return bitsPerByte;
    }
}
