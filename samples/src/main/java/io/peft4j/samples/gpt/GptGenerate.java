package io.peft4j.samples.gpt;

import io.peft4j.runtime.ComputeThreads;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;
import java.util.stream.Stream;

/**
 * Generates text from the base model and its adapters, all on one copy of the base in one
 * {@code PeftModel}, switching adapter between requests without reloading or rebuilding anything.
 *
 * <p>Arguments: {@code --prompt TEXT} or {@code --prompt-file FILE} (bytes, need not be UTF-8),
 * {@code --tokens N} (200), {@code --temperature X} (0.8), {@code --top-k N} (40), {@code --top-p X}
 * (0.95), {@code --seed N} (1), {@code --base FILE}, {@code --adapter NAME=DIR} (repeatable; default
 * every adapter in {@code .cache/gpt/adapters}), {@code --use NAME,NAME,...} (the requests in order;
 * default the base, then each adapter), {@code --merged} (LoRA adapters' requests run merged into the base weights),
 * {@code --graph-cache} (decode over the cache with the SameDiff step graph, not eagerly), {@code --no-cache}
 * (recompute the whole sequence for every byte), {@code --compare-cache} (each request all three ways).
 *
 * <p>Decoding is op-bound, and JavaCPP, under ND4J, reads the process's resident size on every native
 * allocation to enforce {@code org.bytedeco.javacpp.maxphysicalbytes}; this program switches that check off
 * (see {@link ResidentMemoryCheck}).
 */
public final class GptGenerate {

    private GptGenerate() {
    }

    public static void main(String[] args) {
        ResidentMemoryCheck.disable();
        ComputeThreads.apply();
        byte[] prompt = "Call me Ishmael. ".getBytes(StandardCharsets.UTF_8);
        int tokens = 200;
        double temperature = 0.8;
        int topK = 40;
        double topP = 0.95;
        long seed = 1;
        Path basePath = GptPretrain.defaultBase();
        Map<String, Path> adapters = new LinkedHashMap<>();
        List<String> requests = new ArrayList<>();
        boolean merged = false;
        GptGenerator.Decoding decoding = GptGenerator.Decoding.EAGER_CACHE;
        boolean compare = false;
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--prompt" -> prompt = args[++i].getBytes(StandardCharsets.UTF_8);
                case "--prompt-file" -> prompt = readBytes(Path.of(args[++i]));
                case "--tokens" -> tokens = Integer.parseInt(args[++i]);
                case "--temperature" -> temperature = Double.parseDouble(args[++i]);
                case "--top-k" -> topK = Integer.parseInt(args[++i]);
                case "--top-p" -> topP = Double.parseDouble(args[++i]);
                case "--seed" -> seed = Long.parseLong(args[++i]);
                case "--base" -> basePath = Path.of(args[++i]);
                case "--adapter" -> {
                    String[] named = args[++i].split("=", 2);
                    if (named.length != 2) {
                        throw new IllegalArgumentException("--adapter takes NAME=DIR, got '" + args[i] + "'");
                    }
                    adapters.put(named[0], Path.of(named[1]));
                }
                case "--use" -> requests.addAll(List.of(args[++i].split(",")));
                case "--merged" -> merged = true;
                case "--graph-cache" -> decoding = GptGenerator.Decoding.GRAPH_CACHE;
                case "--no-cache" -> decoding = GptGenerator.Decoding.RECOMPUTE;
                case "--compare-cache" -> compare = true;
                default -> throw new IllegalArgumentException("unknown argument '" + args[i] + "': see GptGenerate's javadoc");
            }
        }
        if (adapters.isEmpty()) {
            adapters.putAll(savedAdapters());
        }
        explainPrompt(prompt);

        GptGenerator generator = new GptGenerator(GptBase.read(basePath));
        System.out.println("base " + generator.base().id() + " from " + basePath);
        for (Map.Entry<String, Path> adapter : adapters.entrySet()) {
            boolean mergeThis = merged && adapter.getKey().contains("lora");
            generator.addAdapter(adapter.getKey(), adapter.getValue(), mergeThis);
            System.out.println("adapter " + adapter.getKey() + " from " + adapter.getValue() + (mergeThis ? " (merged)" : ""));
        }
        printMemory(generator, adapters.size());
        if (requests.isEmpty()) {
            requests.add(GptGenerator.BASE);
            requests.addAll(adapters.keySet());
        }
        for (String request : requests) {
            for (GptGenerator.Decoding way : compare ? List.of(GptGenerator.Decoding.values()) : List.of(decoding)) {
                GptGenerator.Generation generation = generator.generate(request, prompt, tokens,
                        new Sampler(temperature, topK, topP, seed), way);
                System.out.printf(Locale.ROOT, "%n== %s, %s: %d bytes in %.2f s, %.1f tokens/s (stopped at the %s) ==%n", request,
                        way, generation.generated().length, generation.seconds(),
                        generation.tokensPerSecond(), generation.stopReason());
                System.out.println(new String(prompt, StandardCharsets.UTF_8) + generation.text().text());
                if (generation.text().malformed() > 0) {
                    System.out.println("(" + generation.text().malformed() + " generated byte sequences are not valid UTF-8; shown as U+FFFD)");
                }
            }
        }
    }

    /** What one base for every adapter saves over a copy of the base per adapter, and the process's resident size. */
    private static void printMemory(GptGenerator generator, int adapters) {
        long baseBytes = generator.base().weights().values().stream().mapToLong(array -> array.length() * array.dataType().width()).sum();
        long adapterBytes = generator.peft() == null ? 0 : generator.peft().adapterNames().stream()
                .mapToLong(name -> generator.peft().adapter(name).parameterCount() * 4).sum();
        System.out.printf(Locale.ROOT, "memory: one base (%.1f MB of weights) serves %d adapters (%.2f MB of adapter weights); a model "
                        + "per adapter would hold %d copies of the base (%.1f MB); resident now %.0f MB%n", baseBytes / 1e6, adapters,
                adapterBytes / 1e6, adapters + 1, (adapters + 1) * baseBytes / 1e6, org.bytedeco.javacpp.Pointer.physicalBytes() / 1e6);
    }

    private static void explainPrompt(byte[] prompt) {
        if (prompt.length == 0) {
            System.out.println("empty prompt: generating from the start of a document");
        }
        int invalid = ByteVocabulary.firstInvalidUtf8(prompt);
        if (invalid >= 0) {
            System.out.println("the prompt is not valid UTF-8 from byte " + invalid + " on; the model reads bytes, so it is used as is");
        }
    }

    private static Map<String, Path> savedAdapters() {
        Map<String, Path> found = new LinkedHashMap<>();
        Path dir = GptAdapt.adaptersDirectory();
        if (!Files.isDirectory(dir)) {
            return found;
        }
        try (Stream<Path> children = Files.list(dir)) {
            children.filter(child -> Files.exists(child.resolve("adapter_config.json"))).sorted()
                    .forEach(child -> found.put(child.getFileName().toString(), child));
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return found;
    }

    private static byte[] readBytes(Path file) {
        try {
            return Files.readAllBytes(file);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read the prompt file " + file, e);
        }
    }
}
