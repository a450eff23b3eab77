package io.peft4j.runtime.internal;

import io.peft4j.annotations.PromptInit;
import io.peft4j.runtime.PeftException;
import java.util.function.Function;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Prompt tuning on one embedding layer: its output {@code [batch, T, d]} becomes
 * {@code [batch, n + T, d]} with the trainable rows {@code <path>.prompt_embeddings [n, d]} first.
 */
public final class PromptEmbedding implements ForwardExtension {

    private final String path;
    private final Object layer;
    private final int virtualTokens;
    private final PromptInit init;
    private final long width;
    private final SDVariable prompt;
    private int graphUses;

    /**
     * @param table       the embedding's {@code @Weight}, the vocabulary table {@code [vocabulary, d]}
     * @param tokenizer   turns {@code text} into token ids, for {@link PromptInit#TEXT}
     */
    public PromptEmbedding(String path, Object layer, Object table, int virtualTokens, PromptInit init, String text,
                           Function<String, int[]> tokenizer, Random random) {
        ForwardDispatcher.requireNone(layer, PromptEmbedding.class, path);
        if (!(table instanceof SDVariable tableVariable) || tableVariable.getArr() == null || tableVariable.getArr().rank() != 2) {
            throw new PeftException("@PromptTuning on layer '" + path + "': its @Weight must be the vocabulary table, an "
                    + "SDVariable [vocabulary, d]");
        }
        if (virtualTokens < 0) {
            throw new PeftException("@PromptTuning on layer '" + path + "': virtualTokens must be positive, got " + virtualTokens);
        }
        INDArray vocabulary = tableVariable.getArr();
        this.path = path;
        this.layer = layer;
        this.virtualTokens = virtualTokens;
        this.init = init;
        this.width = vocabulary.size(1);
        SameDiff sd = tableVariable.getSameDiff();
        this.prompt = virtualTokens == 0 ? null
                : sd.var(path + ".prompt_embeddings", initialRows(vocabulary, text, tokenizer, random));
    }

    private INDArray initialRows(INDArray vocabulary, String text, Function<String, int[]> tokenizer, Random random) {
        DataType dtype = vocabulary.dataType();
        long vocabularySize = vocabulary.size(0);
        int[] ids = new int[virtualTokens];
        switch (init) {
            case RANDOM:
                return Nd4j.randn(random, new long[] {virtualTokens, width}).castTo(dtype);
            case VOCAB_SAMPLE:
                INDArray draws = Nd4j.rand(random, virtualTokens).muli(vocabularySize);
                for (int i = 0; i < virtualTokens; i++) {
                    ids[i] = (int) Math.min(vocabularySize - 1, (long) draws.getDouble(i));
                }
                break;
            case TEXT:
                if (tokenizer == null || text.isEmpty()) {
                    throw new PeftException("@PromptTuning(init = TEXT) on layer '" + path + "' needs text = \"...\" and a "
                            + "tokenizer: PeftModel.builder(model).promptTokenizer(text -> ids)");
                }
                int[] tokens = tokenizer.apply(text);
                if (tokens.length == 0) {
                    throw new PeftException("@PromptTuning(init = TEXT) on layer '" + path + "': the tokenizer gave no ids for \""
                            + text + "\"");
                }
                for (int i = 0; i < virtualTokens; i++) {
                    ids[i] = tokens[i % tokens.length];
                    if (ids[i] < 0 || ids[i] >= vocabularySize) {
                        throw new PeftException("@PromptTuning(init = TEXT) on layer '" + path + "': token id " + ids[i]
                                + " is outside the vocabulary of " + vocabularySize);
                    }
                }
                break;
            default:
                throw new IllegalStateException("unknown init " + init);
        }
        return vocabulary.get(NDArrayIndex.indices(java.util.Arrays.stream(ids).asLongStream().toArray()), NDArrayIndex.all())
                .dup();
    }

    @Override
    public Object afterForward(Object input, Object output) {
        if (!(output instanceof SDVariable sequence)) {
            throw new PeftException("Layer '" + path + "' returned " + (output == null ? "null" : output.getClass().getSimpleName())
                    + "; prompt tuning extends SameDiff graphs, so its forward method must return an SDVariable [batch, T, d]");
        }
        graphUses++;
        return virtualTokens == 0 ? sequence : SequencePrefix.prepend(prompt, virtualTokens, width, sequence);
    }

    public String path() {
        return path;
    }

    public int virtualTokens() {
        return virtualTokens;
    }

    public PromptInit init() {
        return init;
    }

    public long width() {
        return width;
    }

    public int graphUses() {
        return graphUses;
    }

    /** The prompt variable, or {@code null} with no virtual tokens. */
    public SDVariable prompt() {
        return prompt;
    }

    public void register() {
        ForwardDispatcher.register(layer, this, path);
    }

    public void unregister() {
        ForwardDispatcher.unregister(layer, this);
    }
}
