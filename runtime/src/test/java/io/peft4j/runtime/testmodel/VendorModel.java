package io.peft4j.runtime.testmodel;

import io.peft4j.runtime.bridge.ForwardDispatcher;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A model whose code peft4j never annotated nor processed, as from a third party: {@code ids [batch, 4]}
 * → {@code embedding [10, 6]} → two {@link Block}s in {@code encoder.layers} (query, value, ffn, each {@code [6, 6]}) → mean over positions → {@code classifier [6, 3]}. Its layers call the dispatcher
 * themselves, as the agent's advice would.
 */
public final class VendorModel {
    public static final int VOCABULARY = 10;
    public static final int WIDTH = 6;
    public static final int CLASSES = 3;
    public static final int LENGTH = 4;

    public final SameDiff sd = SameDiff.create();
    final Embedding embedding;
    final Encoder encoder;
    final Dense classifier;

    public VendorModel(long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        this.embedding = new Embedding(sd, "embedding", random);
        this.encoder = new Encoder(List.of(new Block(sd, "encoder.layers.0", random), new Block(sd, "encoder.layers.1", random)));
        this.classifier = new Dense(sd, "classifier", WIDTH, CLASSES, random, false);
    }

    /** {@code ids [batch, 4]} (integer-valued floats) to logits {@code [batch, 3]}. */
    public SDVariable forward(SDVariable ids) {
        SDVariable h = embedding.forward(ids);
        for (Block block : encoder.layers) {
            h = block.forward(h);
        }
        return classifier.forward(h.mean(1));
    }

    /** A dense layer {@code y = x · kernel + bias}, {@code kernel [in, out]}, on {@code [batch, in]} or {@code [batch, 4, in]}. */
    public static final class Dense {
        final SDVariable kernel;
        final SDVariable bias;
        private final boolean sequence;

        Dense(SameDiff sd, String name, int in, int out, Random random, boolean sequence) {
            this.sequence = sequence;
            this.kernel = sd.var(name + ".kernel", Nd4j.rand(random, in, out).castTo(DataType.FLOAT).subi(0.5));
            this.bias = sd.var(name + ".bias", Nd4j.rand(random, 1, out).castTo(DataType.FLOAT).subi(0.5).reshape(out));
        }

        public SDVariable forward(SDVariable x) {
            SDVariable flat = x.reshape(-1, kernel.getShape()[0]);
            SDVariable y = flat.mmul(kernel).add(bias);
            if (sequence) {
                y = y.reshape(-1, LENGTH, kernel.getShape()[1]);
            }
            return (SDVariable) ForwardDispatcher.afterForward(this, x, y);
        }
    }

    /** The blocks, under {@code encoder.layers}, as in BERT. */
    record Encoder(List<Block> layers) {
    }

    /** A lookup table {@code [10, 6]}: a matrix weight, but not a linear layer. */
    public static final class Embedding {
        final SDVariable table;

        Embedding(SameDiff sd, String name, Random random) {
            this.table = sd.var(name + ".table", Nd4j.rand(random, VOCABULARY, WIDTH).castTo(DataType.FLOAT).subi(0.5));
        }

        public SDVariable forward(SDVariable ids) {
            SDVariable rows = table.getSameDiff().gather(table, ids.castTo(DataType.INT).reshape(-1), 0);
            return (SDVariable) ForwardDispatcher.afterForward(this, ids, rows.reshape(-1, LENGTH, WIDTH));
        }
    }

    /** {@code h + ffn(tanh(query(h) · value(h)))}, elementwise: small, but every layer joins. */
    public static final class Block {
        final Dense query;
        final Dense value;
        final Dense ffn;

        Block(SameDiff sd, String name, Random random) {
            this.query = new Dense(sd, name + ".query", WIDTH, WIDTH, random, true);
            this.value = new Dense(sd, name + ".value", WIDTH, WIDTH, random, true);
            this.ffn = new Dense(sd, name + ".ffn", WIDTH, WIDTH, random, true);
        }

        public SDVariable forward(SDVariable h) {
            SDVariable mixed = h.getSameDiff().math.tanh(query.forward(h).mul(value.forward(h)));
            return (SDVariable) ForwardDispatcher.afterForward(this, h, h.add(ffn.forward(mixed)));
        }
    }
}
