package io.peft4j.samples.benchmark;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.ComputeThreads;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.samples.gpt.DecoderSession;
import io.peft4j.samples.gpt.EagerDecoder;
import io.peft4j.samples.gpt.GptConfig;
import io.peft4j.samples.gpt.GptModel;
import io.peft4j.samples.gpt.ResidentMemoryCheck;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Arrays;
import java.util.List;
import java.util.Locale;
import java.util.Optional;
import java.util.function.IntFunction;
import java.util.function.Supplier;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Times generation with the byte-level GPT sample ({@link GptConfig#small()}, random weights, batch
 * 1): an 8-byte prompt extended greedily to 128 positions, with the key/value cache computed
 * eagerly ({@link EagerDecoder}, in an {@code EagerSession} and with plain op calls) and by the
 * SameDiff step graph ({@link DecoderSession.Cache}), and by
 * recomputing the whole sequence in the graph for every token, and eagerly with LoRA unmerged and merged
 * (no PyTorch counterpart). Prints tokens per second (median of 7
 * runs after 3 warm-up runs, 20 for the eager decoders, which run last and take turns), the factor the cache gains against the factor its arithmetic predicts
 * (multiply-adds of the whole generation either way), and, when a Python with {@code torch} is found,
 * the same model in {@code benchmarks/pytorch_reference.py --model gpt}. Fails if the four ways
 * generate different tokens.
 */
public final class GenerationBenchmark {
    private static final int LENGTH = 128;
    private static final int RUNS = 7;
    private static final int WARM_UP_RUNS = 3;
    // A generation takes a fraction of a second and eager decoding kept getting faster for a dozen or
    // more of them: the eager rows warm up longer, to measure the steady state.
    private static final int EAGER_WARM_UP_RUNS = 20;

    private enum Mode { EAGER_CACHE, EAGER_CACHE_LIBND4J_KERNELS, EAGER_CACHE_PLAIN_CALLS, GRAPH_CACHE, GRAPH_RECOMPUTE }

    public static void main(String[] args) throws IOException, InterruptedException {
        boolean unchecked = ResidentMemoryCheck.disable();
        int threads = ComputeThreads.apply();
        GptConfig config = GptConfig.small();
        GptModel model = new GptModel(SameDiff.create(), config, 7);
        DecoderSession session = new DecoderSession("benchmark", model);
        int[] prompt = toTokens("The spam");
        int generated = LENGTH - prompt.length;
        int[] expected = generate(model, session, prompt, Mode.GRAPH_RECOMPUTE);
        for (Mode mode : Mode.values()) {
            if (!Arrays.equals(expected, generate(model, session, prompt, mode))) {
                throw new IllegalStateException(mode + " generated other tokens than " + Mode.GRAPH_RECOMPUTE);
            }
        }
        double[] cached = tokensPerSecond(model, session, prompt, Mode.GRAPH_CACHE, generated);
        double[] recomputed = tokensPerSecond(model, session, prompt, Mode.GRAPH_RECOMPUTE, generated);
        GptModel adapted = new GptModel(SameDiff.create(), config, 7);
        PeftModel lora = withLora(adapted);
        // Eager decoding kept getting faster for the first tens of seconds of a process, so the eager rows
        // come after the graph rows and take turns: base in a session, the same with libnd4j's kernels, base with
        // plain calls, LoRA unmerged.
        // A decoder serves one generation after another (reset between them), as a server's would; one row
        // makes a new decoder per generation, which binds its ops and allocates its arrays again.
        EagerDecoder reused = new EagerDecoder(model);
        EagerDecoder libnd4jReused = withVectorKernelsOff(() -> new EagerDecoder(model));
        EagerDecoder plainReused = EagerDecoder.withPlainOpCalls(model);
        EagerDecoder adaptedReused = new EagerDecoder(adapted);
        for (EagerDecoder decoder : List.of(reused, libnd4jReused, plainReused, reused)) {
            if (!Arrays.equals(expected, generate(decoder, prompt))) {
                throw new IllegalStateException("a reused eager decoder generated other tokens than " + Mode.GRAPH_RECOMPUTE);
            }
        }
        double[][] eagerWays = tokensPerSecond(generated, EAGER_WARM_UP_RUNS, () -> generate(reused, prompt),
                () -> generate(model, session, prompt, Mode.EAGER_CACHE), () -> generate(libnd4jReused, prompt),
                () -> generate(plainReused, prompt), () -> generate(adaptedReused, prompt));
        double[] eager = eagerWays[0];
        double[] newDecoders = eagerWays[1];
        double[] libnd4jKernels = eagerWays[2];
        double[] plainCalls = eagerWays[3];
        double[] unmerged = eagerWays[4];
        lora.merge();
        double[] merged = tokensPerSecond(generated, EAGER_WARM_UP_RUNS, () -> generate(adaptedReused, prompt))[0];
        double predicted = flops(config, prompt.length, false) / flops(config, prompt.length, true);
        System.out.printf(Locale.ROOT, "%d native thread%s; GPT %s, batch 1, %d-byte prompt extended to %d positions (%d tokens), "
                + "median of %d runs after %d warm-up runs (eager: %d); JavaCPP's resident-memory check %s%n%n", threads, threads == 1 ? "" : "s", config, prompt.length, LENGTH,
                generated, RUNS, WARM_UP_RUNS, EAGER_WARM_UP_RUNS, unchecked ? "off" : "on");
        System.out.println("| measurement | peft4j tokens/s (min – max) | PyTorch tokens/s (min – max) | peft4j / PyTorch |");
        System.out.println("|---|---:|---:|---:|");
        Optional<JsonNode> torch = PyTorchReference.run("gpt", threads);
        row("with the key/value cache, eager", eager, torch.map(t -> t.path("cached_tokens_per_s")));
        row("with the key/value cache, eager, a new decoder per generation", newDecoders, torch.map(t -> t.path("cached_tokens_per_s")));
        row("with the key/value cache, eager, libnd4j's kernels (-D" + SameDiffTrainer.VECTOR_KERNELS + "=false)", libnd4jKernels,
                torch.map(t -> t.path("cached_tokens_per_s")));
        row("with the key/value cache, eager, plain op calls (no session)", plainCalls, torch.map(t -> t.path("cached_tokens_per_s")));
        row("with the key/value cache, SameDiff step graph", cached, torch.map(t -> t.path("cached_tokens_per_s")));
        row("recomputing every position (SameDiff)", recomputed, torch.map(t -> t.path("recompute_tokens_per_s")));
        row("with the key/value cache, eager, LoRA (r = 8, q and v) unmerged", unmerged, Optional.empty());
        row("with the key/value cache, eager, LoRA merged", merged, Optional.empty());
        System.out.printf(Locale.ROOT, "%nThe cache gains %.1f× in peft4j (eager; %.1f× in the step graph)%s; its arithmetic predicts %.0f× "
                        + "(multiply-adds of the whole generation, recomputed over cached).%n", eager[1] / recomputed[1],
                cached[1] / recomputed[1],
                torch.map(t -> String.format(Locale.ROOT, " and %.1f× in PyTorch", t.path("cached_tokens_per_s").path("median").asDouble()
                        / t.path("recompute_tokens_per_s").path("median").asDouble())).orElse(""), predicted);
        if (torch.isEmpty()) {
            System.out.println("No Python with torch was found (apt-get install python3-torch); no PyTorch comparison.");
        }
    }

    /** {@code decoder} built with peft4j's kernels switched off: a session takes its kernels when it is created. */
    private static EagerDecoder withVectorKernelsOff(Supplier<EagerDecoder> decoder) {
        String before = System.getProperty(SameDiffTrainer.VECTOR_KERNELS);
        System.setProperty(SameDiffTrainer.VECTOR_KERNELS, "false");
        try {
            return decoder.get();
        } finally {
            if (before == null) {
                System.clearProperty(SameDiffTrainer.VECTOR_KERNELS);
            } else {
                System.setProperty(SameDiffTrainer.VECTOR_KERNELS, before);
            }
        }
    }

    /** LoRA on the GPT's query and value projections, with random B (zero at init would skip nothing). */
    private static PeftModel withLora(GptModel model) {
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).seed(3).attach();
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(4);
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            INDArray b = layer.weights().b();
            b.assign(Nd4j.randn(random, b.shape()).castTo(b.dataType()).muli(0.02));
        }
        return peft;
    }

    /** Min, median and max tokens per second over {@link #RUNS} runs after {@link #WARM_UP_RUNS} warm-up runs. */
    private static double[] tokensPerSecond(GptModel model, DecoderSession session, int[] prompt, Mode mode, int generated) {
        return tokensPerSecond(generated, WARM_UP_RUNS, () -> generate(model, session, prompt, mode))[0];
    }

    /**
     * Min, median and max tokens per second of each of {@code generations} over {@link #RUNS} runs after
     * {@code warmUpRuns}, their runs taking turns, so that the machine's slow and fast phases fall on
     * all of them alike.
     */
    private static double[][] tokensPerSecond(int generated, int warmUpRuns, Runnable... generations) {
        double[][] rates = new double[generations.length][RUNS];
        for (int run = -warmUpRuns; run < RUNS; run++) {
            for (int g = 0; g < generations.length; g++) {
                long start = System.nanoTime();
                generations[g].run();
                double seconds = (System.nanoTime() - start) / 1e9;
                if (run >= 0) {
                    rates[g][run] = generated / seconds;
                }
            }
        }
        double[][] summary = new double[generations.length][];
        for (int g = 0; g < generations.length; g++) {
            Arrays.sort(rates[g]);
            summary[g] = new double[] {rates[g][0], rates[g][RUNS / 2], rates[g][RUNS - 1]};
        }
        return summary;
    }

    /** {@link #LENGTH} tokens greedily from {@code prompt}, by {@code decoder} reset for a new sequence. */
    private static int[] generate(EagerDecoder decoder, int[] prompt) {
        decoder.reset();
        int[] tokens = Arrays.copyOf(prompt, LENGTH);
        float[] logits = decoder.feed(prompt);
        for (int length = prompt.length; length < LENGTH; length++) {
            tokens[length] = argmax(logits);
            if (length + 1 < LENGTH) {
                logits = decoder.feed(tokens[length]);
            }
        }
        return tokens;
    }

    private static int[] generate(GptModel model, DecoderSession session, int[] prompt, Mode mode) {
        int[] tokens = Arrays.copyOf(prompt, LENGTH);
        EagerDecoder eager = switch (mode) {
            case EAGER_CACHE -> new EagerDecoder(model);
            case EAGER_CACHE_LIBND4J_KERNELS -> withVectorKernelsOff(() -> new EagerDecoder(model));
            case EAGER_CACHE_PLAIN_CALLS -> EagerDecoder.withPlainOpCalls(model);
            default -> null;
        };
        DecoderSession.Cache cache = mode == Mode.GRAPH_CACHE ? session.newCache() : null;
        IntFunction<float[]> next = length -> switch (mode) {
            case EAGER_CACHE, EAGER_CACHE_LIBND4J_KERNELS, EAGER_CACHE_PLAIN_CALLS -> length == prompt.length ? eager.feed(prompt) : eager.feed(tokens[length - 1]);
            case GRAPH_CACHE -> length == prompt.length ? cache.feed(prompt) : cache.feed(tokens[length - 1]);
            case GRAPH_RECOMPUTE -> session.fullLogits(Arrays.copyOf(tokens, length));
        };
        for (int length = prompt.length; length < LENGTH; length++) {
            tokens[length] = argmax(next.apply(length));
        }
        return tokens;
    }

    /**
     * Multiply-adds of generating from {@code promptLength} to {@link #LENGTH} positions: the
     * projections, feed-forward and output projection of every position computed, and attention over
     * the keys each query sees. A recomputing step repeats every position so far; a cached step
     * computes one.
     */
    static double flops(GptConfig config, int promptLength, boolean cached) {
        double d = config.hidden();
        double perPosition = config.layers() * (4 * d * d + 2 * d * config.feedForward()) + d * config.vocabulary();
        double total = 0;
        for (int length = promptLength; length < LENGTH; length++) {
            boolean prefill = length == promptLength;
            double positions = cached && !prefill ? 1 : length;
            double attention = 0;
            for (int query = length - (int) positions + 1; query <= length; query++) {
                attention += config.layers() * 2 * query * d;
            }
            total += positions * perPosition + attention;
        }
        return total;
    }

    private static void row(String what, double[] ours, Optional<JsonNode> theirs) {
        String torch = theirs.map(t -> String.format(Locale.ROOT, "%.1f (%.1f – %.1f)", t.path("median").asDouble(), t.path("min").asDouble(),
                t.path("max").asDouble())).orElse("—");
        String ratio = theirs.map(t -> String.format(Locale.ROOT, "%.2f", ours[1] / t.path("median").asDouble())).orElse("—");
        System.out.printf(Locale.ROOT, "| %s | %.1f (%.1f – %.1f) | %s | %s |%n", what, ours[1], ours[0], ours[2], torch, ratio);
    }

    private static int argmax(float[] values) {
        int best = 0;
        for (int i = 1; i < values.length; i++) {
            if (values[i] > values[best]) {
                best = i;
            }
        }
        return best;
    }

    private static int[] toTokens(String text) {
        byte[] bytes = text.getBytes(StandardCharsets.UTF_8);
        int[] tokens = new int[bytes.length];
        for (int i = 0; i < bytes.length; i++) {
            tokens[i] = bytes[i] & 0xFF;
        }
        return tokens;
    }
}
