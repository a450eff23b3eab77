package io.peft4j.samples.transformer;

import io.peft4j.annotations.Weight;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Token plus learned position embeddings.
 *
 * <p>Input: token ids {@code [batch, T]} (INT32). Output: {@code [batch, T, d]}. Tables:
 * {@code tokens [vocab, d]} (the {@code @Weight}, which prompt tuning reads to initialise prompts from
 * vocabulary rows), {@code positions [T, d]}.
 *
 * <p>The lookup is a one-hot product rather than a gather: in ND4J 1.0.0-M2.1 the gradient of
 * {@code gather} fails in training ("One of Input arguments was closed before call"), and for this
 * small vocabulary the product costs little.
 */
public final class Embedding {
    @Weight
    final SDVariable tokens;
    final SDVariable positions;
    private final int sequenceLength;
    private final int size;
    private final int vocabulary;

    public Embedding(SameDiff sd, String name, int vocabulary, int sequenceLength, int size, Random random) {
        this.tokens = sd.var(name + ".tokens", Nd4j.rand(random, vocabulary, size).castTo(DataType.FLOAT).subi(0.5).muli(0.2));
        this.positions = sd.var(name + ".positions", Nd4j.rand(random, sequenceLength, size).castTo(DataType.FLOAT).subi(0.5).muli(0.2));
        this.sequenceLength = sequenceLength;
        this.size = size;
        this.vocabulary = vocabulary;
    }

    public SDVariable forward(SDVariable tokenIds) {
        SameDiff sd = tokenIds.getSameDiff();
        SDVariable oneHot = sd.oneHot(null, tokenIds, vocabulary, -1, 1.0, 0.0, DataType.FLOAT).reshape(-1, vocabulary);
        return oneHot.mmul(tokens).reshape(-1, sequenceLength, size).add(positions);
    }
}
