package io.peft4j.samples.gpt;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftMethod;
import io.peft4j.runtime.PeftModel;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * Generates text from one base model with any of several adapters. The base is read from disk once;
 * each adapter gets its own {@link DecoderSession} (a copy of the base weights, 13 MB for the README's
 * model, since merging LoRA writes into them), built when the adapter is added, so switching between
 * requests costs nothing.
 */
public final class GptGenerator {

    /** The name under which the base model without adapter is always available. */
    public static final String BASE = "base";

    private static final ObjectMapper JSON = new ObjectMapper();

    private final GptBase base;
    private final Map<String, DecoderSession> sessions = new LinkedHashMap<>();

    /** What one request produced. {@code stopReason}: the token budget, the end of a document, or the context window. */
    public record Generation(String session, int promptTokens, int[] generated, ByteVocabulary.Text text, double seconds,
                             boolean cached, String stopReason) {
        public double tokensPerSecond() {
            return generated.length / seconds;
        }
    }

    public GptGenerator(GptBase base) {
        this.base = base;
        sessions.put(BASE, new DecoderSession(BASE, base.newModel(), null));
    }

    public GptBase base() {
        return base;
    }

    public DecoderSession session(String name) {
        DecoderSession session = sessions.get(name);
        if (session == null) {
            throw new IllegalArgumentException("no adapter named '" + name + "'; loaded: " + sessions.keySet());
        }
        return session;
    }

    /**
     * Adds the adapter saved in {@code dir} under {@code name}. It must have been trained on this base:
     * its {@code base_model_name_or_path} must be this base's id and its tensors must fit this model.
     * With {@code merge}, a LoRA adapter is merged into this session's weights (no added latency).
     */
    public DecoderSession addAdapter(String name, Path dir, boolean merge) {
        if (sessions.containsKey(name)) {
            throw new IllegalArgumentException("an adapter named '" + name + "' is already loaded");
        }
        JsonNode config = readConfig(dir);
        String trainedOn = config.path("base_model_name_or_path").asText(null);
        if (trainedOn != null && !trainedOn.equals(base.id())) {
            throw new IllegalArgumentException("adapter " + dir + " was trained for base model '" + trainedOn + "', but the base "
                    + "loaded from " + base.file() + " is '" + base.id() + "': adapt this base, or load the base it was trained for");
        }
        String peftType = config.path("peft_type").asText();
        PeftMethod method = Arrays.stream(PeftMethod.values()).filter(each -> each.peftType().equals(peftType)).findFirst()
                .orElseThrow(() -> new IllegalArgumentException("adapter " + dir + " has peft_type '" + peftType
                        + "', which this model does not declare (LORA, PREFIX_TUNING, PROMPT_TUNING)"));
        GptModel model = base.newModel();
        PeftModel peft = PeftModel.builder(model).only(method).attach();
        try {
            peft.load(dir);
        } catch (PeftException e) {
            peft.detach();
            throw new IllegalArgumentException("adapter " + dir + " does not fit the base model " + base.id() + " ("
                    + base.config() + "): " + e.getMessage(), e);
        }
        if (merge) {
            if (method != PeftMethod.LORA) {
                throw new IllegalArgumentException("only LoRA merges into the base weights; " + dir + " is " + peftType);
            }
            peft.merge();
            peft.detach();
        }
        DecoderSession session = new DecoderSession(name, model, peft);
        sessions.put(name, session);
        return session;
    }

    /**
     * Generates up to {@code maxTokens} bytes after {@code prompt} with {@code session}, stopping early at
     * a document start token or at the context window.
     */
    public Generation generate(String sessionName, byte[] prompt, int maxTokens, Sampler sampler, boolean useCache) {
        DecoderSession session = session(sessionName);
        int context = base.config().context();
        int[] promptTokens = ByteVocabulary.document(prompt);
        if (promptTokens.length >= context) {
            throw new IllegalArgumentException("the prompt is " + prompt.length + " bytes, but the context window is " + context
                    + " positions (the document start and at most " + (context - 2) + " prompt bytes, to leave room for one new byte)");
        }
        int[] sequence = Arrays.copyOf(promptTokens, context);
        int length = promptTokens.length;
        long start = System.nanoTime();
        DecoderSession.Cache cache = useCache ? session.newCache() : null;
        float[] logits = useCache ? cache.feed(promptTokens) : session.fullLogits(promptTokens);
        String stopReason = "token budget";
        int generated = 0;
        while (generated < maxTokens) {
            int next = sampler.next(logits);
            if (next == ByteVocabulary.DOCUMENT_START) {
                stopReason = "end of document";
                break;
            }
            sequence[length++] = next;
            generated++;
            if (length == context) {
                stopReason = "context window (" + context + " positions)";
                break;
            }
            if (generated < maxTokens) {
                logits = useCache ? cache.feed(next) : session.fullLogits(Arrays.copyOf(sequence, length));
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        int[] newTokens = Arrays.copyOfRange(sequence, promptTokens.length, length);
        return new Generation(sessionName, promptTokens.length, newTokens, ByteVocabulary.decode(newTokens), seconds, useCache, stopReason);
    }

    private static JsonNode readConfig(Path dir) {
        Path file = dir.resolve("adapter_config.json");
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("no adapter_config.json in " + dir + ": not a saved adapter");
        }
        try {
            return JSON.readTree(file.toFile());
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
    }
}
