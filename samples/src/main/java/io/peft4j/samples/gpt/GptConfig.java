package io.peft4j.samples.gpt;

import java.util.Map;

/**
 * The shape of a {@link GptModel}: a byte vocabulary, a context window of {@code context} positions,
 * {@code layers} pre-LayerNorm decoder blocks of width {@code hidden} with {@code heads} attention
 * heads and a feed-forward width of {@code feedForward}.
 */
public record GptConfig(int vocabulary, int context, int hidden, int heads, int layers, int feedForward) {

    public GptConfig {
        if (vocabulary <= 0 || context <= 0 || hidden <= 0 || heads <= 0 || layers <= 0 || feedForward <= 0) {
            throw new IllegalArgumentException("every size of a GptConfig must be positive: " + this);
        }
        if (hidden % heads != 0) {
            throw new IllegalArgumentException("hidden size " + hidden + " is not divisible by " + heads + " heads");
        }
    }

    /** The README's base model: 3.2 M parameters, 128 bytes of context. */
    public static GptConfig small() {
        return new GptConfig(ByteVocabulary.SIZE, 128, 256, 4, 4, 1024);
    }

    /** The config as string metadata (stored in the base model's safetensors header). */
    public Map<String, String> toMetadata() {
        return Map.of("vocabulary", Integer.toString(vocabulary), "context", Integer.toString(context),
                "hidden", Integer.toString(hidden), "heads", Integer.toString(heads), "layers", Integer.toString(layers),
                "feed_forward", Integer.toString(feedForward));
    }

    /** Reads {@link #toMetadata()} back; {@code source} names the file in errors. */
    public static GptConfig fromMetadata(Map<String, String> metadata, String source) {
        try {
            return new GptConfig(Integer.parseInt(metadata.get("vocabulary")), Integer.parseInt(metadata.get("context")),
                    Integer.parseInt(metadata.get("hidden")), Integer.parseInt(metadata.get("heads")),
                    Integer.parseInt(metadata.get("layers")), Integer.parseInt(metadata.get("feed_forward")));
        } catch (RuntimeException e) {
            throw new IllegalArgumentException(source + " does not hold a GPT config in its metadata (" + metadata + ")", e);
        }
    }
}
