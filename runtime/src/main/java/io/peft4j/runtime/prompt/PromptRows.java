package io.peft4j.runtime.prompt;

import io.peft4j.annotations.PromptInit;
import io.peft4j.runtime.PeftException;
import io.peft4j.runtime.internal.PrependSite;
import io.peft4j.runtime.method.AdapterGate;
import io.peft4j.runtime.method.AttachContext;
import java.util.function.Function;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * One adapter's virtual tokens on one embedding layer: the trainable rows
 * {@code <path>.prompt_embeddings.<adapter> [n, d]}, initialised as Hugging Face PEFT's
 * {@code PromptTuningInit} says (random, sampled vocabulary rows, or the rows of a text's tokens).
 */
final class PromptRows implements PrependSite.Rows {

    private final PromptSite site;
    private final int virtualTokens;
    private final PromptInit init;
    private final SDVariable prompt;
    private final AdapterGate gate;
    private int graphUses;

    /**
     * @param vocabulary the embedding's vocabulary table {@code [vocabulary, d]}
     * @param text       for {@link PromptInit#TEXT}, the text whose tokens give the first rows
     */
    PromptRows(PromptSite site, AttachContext context, SameDiff sameDiff, INDArray vocabulary, int virtualTokens, PromptInit init,
               String text, Function<String, int[]> tokenizer) {
        if (virtualTokens < 0) {
            throw new PeftException("@PromptTuning on layer '" + site.path() + "': virtualTokens must be positive, got " + virtualTokens);
        }
        this.site = site;
        this.virtualTokens = virtualTokens;
        this.init = init;
        DataType dtype = vocabulary.dataType();
        String name = site.path() + ".prompt_embeddings." + context.adapterName();
        this.prompt = virtualTokens == 0 ? null
                : sameDiff.var(context.variableName(sameDiff, name), initialRows(vocabulary, text, tokenizer, context.random()));
        this.gate = new AdapterGate(sameDiff, context.variableName(sameDiff, site.path() + ".prompt_gate." + context.adapterName()),
                dtype);
    }

    private INDArray initialRows(INDArray vocabulary, String text, Function<String, int[]> tokenizer, Random random) {
        long width = vocabulary.size(1);
        long vocabularySize = vocabulary.size(0);
        int[] ids = new int[virtualTokens];
        switch (init) {
            case RANDOM:
                return Nd4j.randn(random, new long[] {virtualTokens, width}).castTo(vocabulary.dataType());
            case VOCAB_SAMPLE:
                INDArray draws = Nd4j.rand(random, virtualTokens).muli(vocabularySize);
                for (int i = 0; i < virtualTokens; i++) {
                    ids[i] = (int) Math.min(vocabularySize - 1, (long) draws.getDouble(i));
                }
                break;
            case TEXT:
                if (tokenizer == null || text.isEmpty()) {
                    throw new PeftException("@PromptTuning(init = TEXT) on layer '" + site.path() + "' needs text = \"...\" and a "
                            + "tokenizer: PeftModel.builder(model).promptTokenizer(text -> ids)");
                }
                int[] tokens = tokenizer.apply(text);
                if (tokens.length == 0) {
                    throw new PeftException("@PromptTuning(init = TEXT) on layer '" + site.path() + "': the tokenizer gave no ids for \""
                            + text + "\"");
                }
                for (int i = 0; i < virtualTokens; i++) {
                    ids[i] = tokens[i % tokens.length];
                    if (ids[i] < 0 || ids[i] >= vocabularySize) {
                        throw new PeftException("@PromptTuning(init = TEXT) on layer '" + site.path() + "': token id " + ids[i]
                                + " is outside the vocabulary of " + vocabularySize);
                    }
                }
                break;
            default:
                throw new IllegalStateException("unknown init " + init);
        }
        return vocabulary.get(NDArrayIndex.indices(java.util.Arrays.stream(ids).asLongStream().toArray()), NDArrayIndex.all()).dup();
    }

    @Override
    public SDVariable rows() {
        return prompt;
    }

    @Override
    public INDArray values() {
        return prompt.getArr();
    }

    @Override
    public SDVariable gate() {
        return gate.variable();
    }

    @Override
    public long count() {
        return virtualTokens;
    }

    @Override
    public void used() {
        graphUses++;
    }

    @Override
    public boolean active() {
        return gate.on();
    }

    PromptSite site() {
        return site;
    }

    int virtualTokens() {
        return virtualTokens;
    }

    PromptInit init() {
        return init;
    }

    int graphUses() {
        return graphUses;
    }

    /** The prompt variable, or {@code null} with no virtual tokens. */
    SDVariable prompt() {
        return prompt;
    }

    void setActive(boolean active) {
        gate.setActive(active);
    }

    void setRemoved() {
        gate.remove();
    }
}
