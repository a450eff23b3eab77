package io.peft4j.samples.minilm;

import io.peft4j.annotations.PromptInit;
import io.peft4j.annotations.PromptTuning;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * all-MiniLM-L6-v2 (a 6-layer BERT, d = 384, 12 heads) as plain annotated Java classes building a
 * SameDiff graph. Fields follow Hugging Face's module names, so layer paths are PEFT's
 * ({@code encoder.layer.0.attention.self.query}), and so are variable names.
 *
 * <p>Inputs: token ids, token type ids and attention mask, {@code [batch, T]} (INT32). Outputs: the last
 * hidden state {@code [batch, T, d]}, or the sentence embedding {@code [batch, d]}: the mean over the
 * tokens the mask keeps, L2-normalised, as sentence-transformers computes it. Prompt tuning is declared
 * on the embeddings (20 virtual tokens, which every token attends to and the pooling leaves out), LoRA
 * and prefix tuning on each layer's self-attention, a bottleneck adapter after each feed-forward block.
 */
public final class MiniLm {
    final MiniLmConfig config;
    final SameDiff sd;
    @PromptTuning(virtualTokens = 20, init = PromptInit.VOCAB_SAMPLE)
    final BertEmbeddings embeddings;
    final Encoder encoder;

    /** {@code encoder.layer.<i>}. */
    public static final class Encoder {
        final List<BertLayer> layer = new ArrayList<>();
    }

    public MiniLm(SameDiff sd, MiniLmConfig config) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(0);
        this.config = config;
        this.sd = sd;
        this.embeddings = new BertEmbeddings(sd, "embeddings", config);
        this.encoder = new Encoder();
        for (int i = 0; i < config.layers(); i++) {
            encoder.layer.add(new BertLayer(sd, "encoder.layer." + i, config, random));
        }
    }

    /** {@code [batch, T, d]}. */
    public SDVariable lastHiddenState(SDVariable inputIds, SDVariable tokenTypeIds, SDVariable attentionMask) {
        SDVariable hidden = embeddings.forward(inputIds, tokenTypeIds);
        // A prompt makes the sequence longer than the mask: its positions are attended to by every token.
        SDVariable mask = MaskPadding.leftPad(attentionMask.castTo(DataType.FLOAT), 2, sd.sizeAt(hidden, 1), 1.0);
        SDVariable additive = sd.expandDims(sd.expandDims(mask.rsub(1.0).mul(-1e9), 1), 1);
        for (BertLayer layer : encoder.layer) {
            hidden = layer.forward(hidden, additive);
        }
        return hidden;
    }

    /** Mean pooling over the kept tokens (never a prompt's), then L2 normalisation: {@code [batch, d]}. */
    public SDVariable sentenceEmbedding(SDVariable inputIds, SDVariable tokenTypeIds, SDVariable attentionMask) {
        SDVariable hidden = lastHiddenState(inputIds, tokenTypeIds, attentionMask);
        SDVariable mask = MaskPadding.leftPad(attentionMask.castTo(DataType.FLOAT), 2, sd.sizeAt(hidden, 1), 0.0);
        SDVariable pooled = hidden.mul(sd.expandDims(mask, 2)).sum(1).div(mask.sum(true, 1));
        return pooled.div(sd.math.sqrt(sd.math.square(pooled).sum(true, 1)));
    }

    public SameDiff sameDiff() {
        return sd;
    }

    public MiniLmConfig config() {
        return config;
    }

    /**
     * Sets every parameter from {@code weights} (by Hugging Face name, e.g. from
     * {@link OnnxInitializers}); fails naming the parameters that are missing or of the wrong shape.
     */
    public void load(Map<String, INDArray> weights) {
        Set<String> missing = new TreeSet<>();
        for (SDVariable variable : sd.variables()) {
            if (variable.getVariableType() != VariableType.VARIABLE) {
                continue;
            }
            INDArray value = weights.get(variable.name());
            if (value == null) {
                missing.add(variable.name());
            } else if (!Arrays.equals(value.shape(), variable.getArr().shape())) {
                throw new IllegalArgumentException("weight '" + variable.name() + "' has shape " + Arrays.toString(value.shape())
                        + ", the model needs " + Arrays.toString(variable.getArr().shape()));
            } else {
                variable.getArr().assign(value);
            }
        }
        if (!missing.isEmpty()) {
            throw new IllegalArgumentException("no weights for " + missing);
        }
    }
}
