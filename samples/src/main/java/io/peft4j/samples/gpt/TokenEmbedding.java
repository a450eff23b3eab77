package io.peft4j.samples.gpt;

import io.peft4j.annotations.Weight;
import io.peft4j.runtime.EagerSession;
import io.peft4j.runtime.RowProduct;
import io.peft4j.samples.transformer.Shapes;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.api.ops.impl.shape.Gather;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Token plus learned position embeddings, and the tied output projection.
 *
 * <p>Input: token ids {@code [batch, T]} and their positions {@code [T]} (INT32; a cached decoding
 * step passes the position it is at). Output {@code [batch, T, d]}. Tables: {@code tokens [vocab, d]}
 * (the {@code @Weight}; prompt tuning samples its rows) and {@code positions [context, d]}. Lookups
 * are one-hot products: ND4J 1.0.0-M2.1 cannot train through {@code gather}, and 257 rows cost little.
 */
public final class TokenEmbedding {
    @Weight
    final SDVariable tokens;
    final SDVariable positions;
    private final int vocabulary;
    private final int context;
    private final int size;

    public TokenEmbedding(SameDiff sd, String name, GptConfig config, Random random) {
        this.vocabulary = config.vocabulary();
        this.context = config.context();
        this.size = config.hidden();
        this.tokens = sd.var(name + ".tokens", Nd4j.randn(random, new long[] {vocabulary, size}).castTo(DataType.FLOAT).muli(0.02));
        this.positions = sd.var(name + ".positions", Nd4j.randn(random, new long[] {context, size}).castTo(DataType.FLOAT).muli(0.01));
    }

    public SDVariable forward(SDVariable tokenIds, SDVariable positionIds) {
        SameDiff sd = tokenIds.getSameDiff();
        SDVariable oneHot = sd.oneHot(null, tokenIds, vocabulary, -1, 1.0, 0.0, DataType.FLOAT).reshape(-1, vocabulary);
        SDVariable rows = sd.reshape(oneHot.mmul(tokens), sd.concat(0, tokenIds.shape(), sd.constant(Nd4j.createFromArray((long) size))));
        SDVariable positionRows = sd.oneHot(null, positionIds, context, -1, 1.0, 0.0, DataType.FLOAT).mmul(positions);
        return rows.add(positionRows);
    }

    /**
     * Eager (inference without a graph), one sequence: token ids {@code [T]} at positions {@code [T]}
     * (INT32) to {@code [T, d]}. The rows are looked up ({@code gather}), not multiplied by one-hots:
     * the same values. In an {@link EagerSession} the lookups and their sum reuse their outputs and
     * run in peft4j's kernels (two {@code pullRows} calls took most of a decoding step's time outside
     * its products).
     */
    public INDArray forward(INDArray tokenIds, INDArray positionIds) {
        INDArray tokenRows = rows("token rows", tokens.getArr(), tokenIds);
        INDArray positionRows = rows("position rows", positions.getArr(), positionIds);
        return EagerSession.sum(this, "token + position", tokenRows, positionRows);
    }

    private INDArray rows(String name, INDArray table, INDArray ids) {
        INDArray rows = EagerSession.outputFor(this, name, table.dataType(), ids.length(), size);
        return EagerSession.call(this, name, () -> {
            Gather gather = new Gather(table, ids, 0);
            gather.addOutputArgument(rows);
            return gather;
        }, rows, table, ids);
    }

    /**
     * Eager {@link #logits(SDVariable)}: {@code [T, d] → [T, vocab]}; one row (a decoding step) by
     * {@link RowProduct}.
     */
    public INDArray logits(INDArray hidden) {
        if (hidden.size(0) != 1) {
            return Nd4j.gemm(hidden, tokens.getArr(), false, true);
        }
        return RowProduct.timesTransposed(this, "logits", hidden, tokens.getArr());
    }

    /** The tied output projection: hidden states {@code [batch, T, d]} to logits {@code [batch, T, vocab]}. */
    public SDVariable logits(SDVariable hidden) {
        SameDiff sd = hidden.getSameDiff();
        SDVariable rows = sd.mmul(hidden.reshape(-1, size), tokens, false, true, false);
        return sd.reshape(rows, Shapes.replaceLast(hidden, vocabulary));
    }
}
