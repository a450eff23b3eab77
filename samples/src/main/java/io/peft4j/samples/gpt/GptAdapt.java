package io.peft4j.samples.gpt;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.SerializationFeature;
import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.samples.BatchIterator;
import io.peft4j.samples.data.DataCache;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.annotation.Annotation;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.Locale;
import java.util.stream.Stream;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;

/**
 * Adapts the Moby-Dick base to the State of the Union addresses with LoRA, bottleneck adapters,
 * prefix tuning, prompt tuning and full fine-tuning, from the same base and on the same training windows, and reports
 * held-out bits per byte on unseen addresses (and on held-out Moby-Dick chapters, to show what
 * each method forgets) with trainable parameters and training time. Writes
 * {@code target/gpt-adaptation/results.md} and {@code .json} and saves each adapter to
 * {@code .cache/gpt/adapters/sotu-<method>} for the generate command. Pretrains the base first if
 * there is none.
 *
 * <p>Arguments: method names to run (default {@code lora adapter prefix prompt full}), {@code --steps N}
 * (default 300), {@code --batch N} (16).
 */
public final class GptAdapt {

    /** One row of the table. */
    public record Row(String method, long trainable, double trainablePercent, double sotuBitsPerByte, double mobyDickBitsPerByte,
                      int steps, double secondsPerStep, double minutes, long checkpointBytes) {
    }

    private static final Path OUTPUT = Path.of("target", "gpt-adaptation");
    private static final int HELD_OUT_WINDOWS = 256;
    private static final ObjectMapper JSON = new ObjectMapper().enable(SerializationFeature.INDENT_OUTPUT);

    private GptAdapt() {
    }

    public static Path adaptersDirectory() {
        return DataCache.root().resolve("gpt").resolve("adapters");
    }

    public static void main(String[] args) throws IOException {
        ComputeThreads.apply();
        int steps = 300;
        int batch = 16;
        List<String> methods = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--steps" -> steps = Integer.parseInt(args[++i]);
                case "--batch" -> batch = Integer.parseInt(args[++i]);
                case "lora", "adapter", "prefix", "prompt", "full" -> methods.add(args[i]);
                default -> throw new IllegalArgumentException("unknown argument '" + args[i]
                        + "': use lora, adapter, prefix, prompt, full, --steps N, --batch N");
            }
        }
        if (methods.isEmpty()) {
            methods = List.of("lora", "adapter", "prefix", "prompt", "full");
        }
        if (!Files.exists(GptPretrain.defaultBase())) {
            GptPretrain.main(new String[0]);
        }
        GptBase base = GptBase.read(GptPretrain.defaultBase());
        ByteCorpus sotu = ByteCorpus.stateOfTheUnion();
        ByteCorpus mobyDick = ByteCorpus.mobyDick();
        System.out.printf(Locale.ROOT, "%s: %d addresses (%,d bytes) for training, %d held out (%,d bytes)%n", sotu.name(),
                sotu.train().size(), sotu.trainBytes(), sotu.heldOut().size(), sotu.heldOutBytes());
        int context = base.config().context();
        DataSet sotuHeldOut = Windows.consecutive(sotu.heldOut(), context, HELD_OUT_WINDOWS);
        DataSet mobyHeldOut = Windows.consecutive(mobyDick.heldOut(), context, HELD_OUT_WINDOWS);
        DataSet train = Windows.random(sotu.train(), steps * batch, context, 11);
        System.out.printf(Locale.ROOT, "held-out: %,d bytes of unseen addresses, %,d of unseen Moby-Dick chapters%n",
                sotuHeldOut.getFeatures().length(), mobyHeldOut.getFeatures().length());

        List<Row> rows = new ArrayList<>();
        GptModel plain = base.newModel();
        LanguageModelGraph baseGraph = LanguageModelGraph.build(plain, "lm", context);
        long total = plain.parameters().values().stream().mapToLong(INDArray::length).sum();
        rows.add(new Row("base (no adaptation)", 0, 0, baseGraph.bitsPerByte(sotuHeldOut, 32), baseGraph.bitsPerByte(mobyHeldOut, 32),
                0, 0, 0, 0));
        print(rows.get(0));
        for (String method : methods) {
            System.out.println("== " + method + " ==");
            rows.add(method.equals("full") ? fullFineTuning(base, train, batch, sotuHeldOut, mobyHeldOut, total)
                    : adapt(base, method, train, batch, sotuHeldOut, mobyHeldOut));
            print(rows.get(rows.size() - 1));
            write(rows, base, steps, batch);
        }
        System.out.println(table(rows));
    }

    private static Row adapt(GptBase base, String name, DataSet train, int batch, DataSet sotuHeldOut, DataSet mobyHeldOut) {
        Class<? extends Annotation> method = switch (name) {
            case "lora" -> LoRA.class;
            case "adapter" -> Adapter.class;
            case "prefix" -> PrefixTuning.class;
            default -> PromptTuning.class;
        };
        GptModel model = base.newModel();
        PeftModel peft = PeftModel.builder(model).only(method).seed(5).taskType("CAUSAL_LM").baseModel(base.id()).attach();
        LanguageModelGraph graph = LanguageModelGraph.build(model, "lm", base.config().context());
        int steps = (int) (train.numExamples() / batch);
        TrainingReport report = peft.train(graph.training(learningRate(method)), new BatchIterator(train, batch), 1,
                new ProgressListener(System.out, 25, steps));
        Path saved = peft.save(adaptersDirectory().resolve("sotu-" + name));
        var count = peft.parameterCount();
        return new Row(name, count.trainable(), count.trainablePercent(), graph.bitsPerByte(sotuHeldOut, 32),
                graph.bitsPerByte(mobyHeldOut, 32), report.steps(), report.seconds() / report.steps(), report.seconds() / 60,
                sizeOf(saved));
    }

    private static Row fullFineTuning(GptBase base, DataSet train, int batch, DataSet sotuHeldOut, DataSet mobyHeldOut, long total) {
        GptModel model = base.newModel();
        LanguageModelGraph graph = LanguageModelGraph.build(model, "lm", base.config().context());
        int steps = (int) (train.numExamples() / batch);
        TrainingReport report = SameDiffTrainer.fit(model.sameDiff(), graph.training(5e-4), new BatchIterator(train, batch), 1,
                new ProgressListener(System.out, 25, steps));
        Path saved = DataCache.root().resolve("gpt").resolve("sotu-full.safetensors");
        model.save(saved);
        return new Row("full fine-tuning", total, 100, graph.bitsPerByte(sotuHeldOut, 32), graph.bitsPerByte(mobyHeldOut, 32),
                report.steps(), report.seconds() / report.steps(), report.seconds() / 60, sizeOf(saved));
    }

    /** Prompt and prefix tuning train few parameters far from the loss and want larger steps, as in their papers. */
    private static double learningRate(Class<? extends Annotation> method) {
        return method == LoRA.class || method == Adapter.class ? 2e-3 : method == PrefixTuning.class ? 1e-2 : 3e-2;
    }

    private static void print(Row row) {
        System.out.printf(Locale.ROOT, "%s: State of the Union %.4f bits/byte, Moby-Dick %.4f bits/byte, %,d trainable%n", row.method(),
                row.sotuBitsPerByte(), row.mobyDickBitsPerByte(), row.trainable());
    }

    static String table(List<Row> rows) {
        StringBuilder out = new StringBuilder("| method | SOTU held-out bits/byte | Moby-Dick held-out bits/byte | trainable params "
                + "| trainable % | steps | s / step | training min | checkpoint (bytes) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for (Row row : rows) {
            out.append(String.format(Locale.ROOT, "| %s | %.4f | %.4f | %,d | %.2f | %d | %.2f | %.1f | %,d |%n", row.method(),
                    row.sotuBitsPerByte(), row.mobyDickBitsPerByte(), row.trainable(), row.trainablePercent(), row.steps(),
                    row.secondsPerStep(), row.minutes(), row.checkpointBytes()));
        }
        return out.toString();
    }

    private static void write(List<Row> rows, GptBase base, int steps, int batch) {
        try {
            Files.createDirectories(OUTPUT);
            JSON.writeValue(OUTPUT.resolve("results.json").toFile(), rows);
            Files.writeString(OUTPUT.resolve("results.md"), "Base " + base.id() + " (" + base.config() + "), " + steps + " steps of "
                    + batch + " windows of " + base.config().context() + " bytes per method.\n\n" + table(rows));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    private static long sizeOf(Path path) {
        try (Stream<Path> files = Files.walk(path)) {
            return files.filter(Files::isRegularFile).mapToLong(file -> file.toFile().length()).sum();
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }
}
