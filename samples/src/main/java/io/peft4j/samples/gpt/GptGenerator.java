package io.peft4j.samples.gpt;

import com.fasterxml.jackson.databind.JsonNode;
import io.peft4j.runtime.AdapterScope;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.checkpoint.AdapterCheckpoint;
import io.peft4j.runtime.checkpoint.CheckpointOptions;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.prefix.PrefixTuningAdapter;
import io.peft4j.runtime.prompt.PromptTuningAdapter;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.HashSet;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * Generates text from one base model with any of several adapters, all held by one {@link PeftModel}
 * on one copy of the base weights, switching between requests with {@code setAdapter}. By default each
 * token is decoded eagerly over a key/value cache ({@link Decoding#EAGER_CACHE}), which needs no graph;
 * the SameDiff decoding graphs are built on the first request that uses them: one for the base and every
 * LoRA adapter, and one for each length of prompt or prefix, since those add sequence positions.
 */
public final class GptGenerator {

    /** The name under which the base model without adapter is always available. */
    public static final String BASE = "base";

    private final GptBase base;
    private final GptModel model;
    private PeftModel peft;
    private final Map<String, String> groups = new LinkedHashMap<>();
    private final Set<String> mergedRequests = new HashSet<>();
    private final Map<String, DecoderSession> sessions = new LinkedHashMap<>();
    // One eager decoder for every request, reset between them: its ops stay bound (EagerDecoder#reset).
    private EagerDecoder eagerDecoder;
    private int builds;

    /** How each new token's logits are computed; every way gives the same logits to fp32 rounding. */
    public enum Decoding {
        /** Over a key/value cache, by eager ND4J ops ({@link EagerDecoder}): the fastest. */
        EAGER_CACHE("key/value cache, eager"),
        /** Over a key/value cache, by the SameDiff step graph ({@link DecoderSession.Cache}). */
        GRAPH_CACHE("key/value cache, SameDiff graph"),
        /** Without a cache: the SameDiff graph over the whole sequence for every token. */
        RECOMPUTE("full recompute, SameDiff graph");

        private final String description;

        Decoding(String description) {
            this.description = description;
        }

        @Override
        public String toString() {
            return description;
        }
    }

    /** What one request produced. {@code stopReason}: the token budget, the end of a document, or the context window. */
    public record Generation(String session, int promptTokens, int[] generated, ByteVocabulary.Text text, double seconds,
                             Decoding decoding, String stopReason) {
        public double tokensPerSecond() {
            return generated.length / seconds;
        }
    }

    public GptGenerator(GptBase base) {
        this.base = base;
        this.model = base.newModel();
        groups.put(BASE, "plain");
    }

    public GptBase base() {
        return base;
    }

    /** The one model every request runs on. */
    public GptModel model() {
        return model;
    }

    /** The adapters, or {@code null} before the first is added. */
    public PeftModel peft() {
        return peft;
    }

    /** Every request name: {@link #BASE} and the adapters. */
    public List<String> requests() {
        return List.copyOf(groups.keySet());
    }

    /**
     * Adds the adapter saved in {@code dir} under {@code name}. It must have been trained on this base:
     * its {@code base_model_name_or_path} must be this base's id and its tensors must fit this model.
     * With {@code merge}, a LoRA adapter's requests run with it merged into the base weights (merged
     * before each of its requests and unmerged after, as PEFT's {@code merge_adapter} does).
     */
    public void addAdapter(String name, Path dir, boolean merge) {
        if (groups.containsKey(name)) {
            throw new IllegalArgumentException("an adapter named '" + name + "' is already loaded");
        }
        JsonNode config = AdapterCheckpoint.readConfig(dir);
        String trainedOn = config.path("base_model_name_or_path").asText(null);
        if (trainedOn != null && !trainedOn.equals(base.id())) {
            throw new IllegalArgumentException("adapter " + dir + " was trained for base model '" + trainedOn + "', but the base "
                    + "loaded from " + base.file() + " is '" + base.id() + "': adapt this base, or load the base it was trained for");
        }
        try {
            if (peft == null) {
                peft = PeftModel.fromPretrained(model, dir, CheckpointOptions.defaults().withAdapterName(name));
            } else {
                peft.addAdapter(name, dir);
            }
        } catch (PeftException e) {
            throw new IllegalArgumentException("adapter " + dir + " does not fit the base model " + base.id() + " (" + base.config()
                    + "): " + e.getMessage(), e);
        }
        var added = peft.adapter(name);
        if (merge && added.part(LoraAdapter.class) == null) {
            throw new IllegalArgumentException("only LoRA merges into the base weights; " + dir + " is " + config.path("peft_type").asText());
        }
        if (merge) {
            mergedRequests.add(name);
        }
        PrefixTuningAdapter prefix = added.part(PrefixTuningAdapter.class);
        PromptTuningAdapter prompt = added.part(PromptTuningAdapter.class);
        groups.put(name, prefix != null ? "prefix-" + prefix.virtualTokens()
                : prompt != null ? "prompt-" + config.path("num_virtual_tokens").asInt() : "plain");
        sessions.clear(); // graphs include the adapters that exist when they are built
    }

    /** The graphs that serve {@code request}, built with the adapters of its group on. */
    public DecoderSession session(String request) {
        String group = groups.get(request);
        if (group == null) {
            throw new IllegalArgumentException("no adapter named '" + request + "'; loaded: " + groups.keySet());
        }
        DecoderSession session = sessions.get(group);
        if (session == null) {
            if (peft != null) {
                // A prompt or prefix adds its positions only to graphs built while it is on.
                List<String> on = groups.entrySet().stream().filter(entry -> entry.getValue().equals(group) && !entry.getKey().equals(BASE))
                        .map(Map.Entry::getKey).toList();
                peft.setAdapters(on.isEmpty() || group.equals("plain") ? List.of() : List.of(on.get(0)));
            }
            session = new DecoderSession(group + "-" + builds++, model);
            sessions.put(group, session);
        }
        return session;
    }

    /**
     * Generates up to {@code maxTokens} bytes after {@code prompt} for {@code request} (an adapter name or
     * {@link #BASE}), stopping early at a document start token or at the context window.
     */
    public Generation generate(String request, byte[] prompt, int maxTokens, Sampler sampler, Decoding decoding) {
        DecoderSession session = decoding == Decoding.EAGER_CACHE ? null : session(request);
        int context = base.config().context();
        int[] promptTokens = ByteVocabulary.document(prompt);
        if (promptTokens.length >= context) {
            throw new IllegalArgumentException("the prompt is " + prompt.length + " bytes, but the context window is " + context
                    + " positions (the document start and at most " + (context - 2) + " prompt bytes, to leave room for one new byte)");
        }
        try (AdapterScope scope = select(request)) {
            return run(request, session, promptTokens, maxTokens, sampler, decoding);
        }
    }

    /** Switches the adapters to {@code request}'s; the scope restores nothing but undoes a merge or a disable. */
    private AdapterScope select(String request) {
        if (peft == null) {
            return () -> { };
        }
        if (request.equals(BASE)) {
            return peft.disableAdapters();
        }
        peft.setAdapter(request);
        if (!mergedRequests.contains(request)) {
            return () -> { };
        }
        peft.merge(request);
        return peft::unmerge;
    }

    private EagerDecoder eagerDecoder() {
        if (eagerDecoder == null) {
            eagerDecoder = new EagerDecoder(model);
        }
        eagerDecoder.reset();
        return eagerDecoder;
    }

    private Generation run(String request, DecoderSession session, int[] promptTokens, int maxTokens, Sampler sampler, Decoding decoding) {
        int context = base.config().context();
        int[] sequence = Arrays.copyOf(promptTokens, context);
        int length = promptTokens.length;
        long start = System.nanoTime();
        EagerDecoder eager = decoding == Decoding.EAGER_CACHE ? eagerDecoder() : null;
        DecoderSession.Cache cache = decoding == Decoding.GRAPH_CACHE ? session.newCache() : null;
        float[] logits = switch (decoding) {
            case EAGER_CACHE -> eager.feed(promptTokens);
            case GRAPH_CACHE -> cache.feed(promptTokens);
            case RECOMPUTE -> session.fullLogits(promptTokens);
        };
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
                logits = switch (decoding) {
                    case EAGER_CACHE -> eager.feed(next);
                    case GRAPH_CACHE -> cache.feed(next);
                    case RECOMPUTE -> session.fullLogits(Arrays.copyOf(sequence, length));
                };
            }
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        int[] newTokens = Arrays.copyOfRange(sequence, promptTokens.length, length);
        return new Generation(request, promptTokens.length, newTokens, ByteVocabulary.decode(newTokens), seconds, decoding, stopReason);
    }
}
