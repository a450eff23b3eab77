package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.impl.transforms.custom.SoftMax;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Token ids {@code [batch, T]} → embedding {@code [batch, L, d]} → masked single-head attention →
 * masked mean over positions {@code [batch, d]} → head {@code [batch, 2]}.
 *
 * <p>The masks are inputs: {@code queryMask [batch, L]} selects the positions that are pooled,
 * {@code keyMask [batch, L']} the keys every query may attend to. With a prompt of n tokens
 * {@code L = n + T}; with a prefix of m positions {@code L' = m + L}.
 */
public final class SequenceModel {
    public static final int VOCABULARY = 10;
    public static final int WIDTH = 4;

    public final SameDiff sd = SameDiff.create();
    @PromptTuning(virtualTokens = 3)
    final TokenEmbedding embedding;
    @PrefixTuning(virtualTokens = 2)
    final Attention attention;
    final SequenceLinear head;
    /** The keys the attention saw in the last graph built, {@code [batch, L', d]}. */
    public SDVariable lastKeys;

    /** Single-head attention with query, key and value projections. */
    public static final class Attention {
        final SequenceLinear query;
        final SequenceLinear key;
        final SequenceLinear value;

        Attention(SameDiff sd, DataType dtype, Random random) {
            query = new SequenceLinear(sd, "attention.query", WIDTH, WIDTH, dtype, random);
            key = new SequenceLinear(sd, "attention.key", WIDTH, WIDTH, dtype, random);
            value = new SequenceLinear(sd, "attention.value", WIDTH, WIDTH, dtype, random);
        }
    }

    public SequenceModel(DataType dtype, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        embedding = new TokenEmbedding(sd, "embedding", VOCABULARY, WIDTH, dtype, random);
        attention = new Attention(sd, dtype, random);
        head = new SequenceLinear(sd, "head", WIDTH, 2, dtype, random);
    }

    public SDVariable forward(SDVariable tokens, SDVariable queryMask, SDVariable keyMask) {
        return run(embedding, attention, head, tokens, queryMask, keyMask);
    }

    SDVariable run(TokenEmbedding embedding, Attention attention, SequenceLinear head, SDVariable tokens,
                   SDVariable queryMask, SDVariable keyMask) {
        SDVariable h = embedding.forward(tokens);
        SDVariable q = attention.query.forward(h);
        SDVariable k = attention.key.forward(h);
        SDVariable v = attention.value.forward(h);
        lastKeys = k;
        SDVariable scores = sd.mmul(q, k, false, true, false).div(Math.sqrt(WIDTH));
        SDVariable hidden = keyMask.rsub(1.0).mul(-1e9);
        SDVariable keyBias = sd.expandDims(hidden, 1);
        SDVariable attended = sd.mmul(sd.nn.softmax(scores.add(keyBias), 2), v);
        SDVariable weights = sd.expandDims(queryMask, 2);
        SDVariable pooled = attended.mul(weights).sum(1).div(queryMask.sum(true, 1));
        return head.forward(pooled);
    }

    /** {@link #forward(SDVariable, SDVariable, SDVariable)} computed eagerly, with the same masks. */
    public INDArray forward(INDArray tokens, INDArray queryMask, INDArray keyMask) {
        return runEagerly(embedding, attention, head, tokens, queryMask, keyMask);
    }

    INDArray runEagerly(TokenEmbedding embedding, Attention attention, SequenceLinear head, INDArray tokens, INDArray queryMask,
                        INDArray keyMask) {
        INDArray h = embedding.forward(tokens);
        INDArray q = attention.query.forward(h);
        INDArray k = attention.key.forward(h);
        INDArray v = attention.value.forward(h);
        INDArray scores = Nd4j.matmul(q, k, null, false, true, false).divi(Math.sqrt(WIDTH));
        INDArray keyBias = keyMask.rsub(1.0).muli(-1e9).reshape(keyMask.size(0), 1, keyMask.size(1));
        INDArray weights = Nd4j.exec((CustomOp) new SoftMax(scores.add(keyBias.broadcast(scores.shape())), null, 2))[0];
        INDArray attended = Nd4j.matmul(weights, v, null, false, false, false);
        INDArray queryWeights = queryMask.reshape(queryMask.size(0), queryMask.size(1), 1).broadcast(attended.shape());
        INDArray pooled = attended.mul(queryWeights).sum(1).diviColumnVector(queryMask.sum(true, 1));
        return head.forward(pooled);
    }
}
