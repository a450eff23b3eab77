package io.peft4j.samples.minilm;

import io.peft4j.annotations.Weight;
import io.peft4j.samples.transformer.LayerNorm;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * BERT's input embeddings: word + position + token type, then LayerNorm.
 *
 * <p>Input token ids and token type ids {@code [batch, T]} (INT32); output {@code [batch, T, d]}.
 * Tables: {@code word_embeddings [vocabulary, d]} (the {@code @Weight}), {@code position_embeddings
 * [maxPositions, d]}, {@code token_type_embeddings [typeVocabulary, d]}.
 */
public final class BertEmbeddings {
    @Weight
    final SDVariable wordEmbeddings;
    final SDVariable positionEmbeddings;
    final SDVariable tokenTypeEmbeddings;
    final LayerNorm layerNorm;

    public BertEmbeddings(SameDiff sd, String name, MiniLmConfig config) {
        this.wordEmbeddings = sd.var(name + ".word_embeddings.weight", Nd4j.zeros(DataType.FLOAT, config.vocabulary(), config.hidden()));
        this.positionEmbeddings = sd.var(name + ".position_embeddings.weight",
                Nd4j.zeros(DataType.FLOAT, config.maxPositions(), config.hidden()));
        this.tokenTypeEmbeddings = sd.var(name + ".token_type_embeddings.weight",
                Nd4j.zeros(DataType.FLOAT, config.typeVocabulary(), config.hidden()));
        this.layerNorm = new LayerNorm(sd, name + ".LayerNorm.weight", name + ".LayerNorm.bias", config.hidden(), config.layerNormEps());
    }

    public SDVariable forward(SDVariable inputIds, SDVariable tokenTypeIds) {
        SameDiff sd = inputIds.getSameDiff();
        SDVariable length = sd.sizeAt(inputIds, 1);
        SDVariable positions = sd.range(sd.constant(Nd4j.scalar(0L)), length, sd.constant(Nd4j.scalar(1L)), DataType.INT64);
        SDVariable summed = sd.gather(wordEmbeddings, inputIds, 0)
                .add(sd.gather(tokenTypeEmbeddings, tokenTypeIds, 0))
                .add(sd.gather(positionEmbeddings, positions, 0));
        return layerNorm.forward(summed);
    }
}
