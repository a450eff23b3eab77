package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * {@code x [batch, 6] → encoder [6, 8] → tanh → hidden [8, 8] → tanh → classifier [8, 3]}: LoRA on
 * the encoder (r = 2, alpha 4) and the hidden layer (r = 3, alpha 3), a bottleneck adapter (b = 2)
 * after the encoder, and a classifier head that adapters may train as an extra module.
 */
public final class ClassifierModel {
    public static final int IN = 6;
    public static final int WIDTH = 8;
    public static final int CLASSES = 3;

    public final SameDiff sd = SameDiff.create();
    @LoRA(rank = 2, alpha = 4)
    @Adapter(size = 2, activation = "tanh")
    final PlainLinear encoder;
    @LoRA(rank = 3, alpha = 3)
    final PlainLinear hidden;
    final PlainLinear classifier;

    public ClassifierModel(DataType dtype, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        this.encoder = new PlainLinear(sd, "encoder", IN, WIDTH, dtype, random);
        this.hidden = new PlainLinear(sd, "hidden", WIDTH, WIDTH, dtype, random);
        this.classifier = new PlainLinear(sd, "classifier", WIDTH, CLASSES, dtype, random);
    }

    /** {@code x [batch, 6]} to logits {@code [batch, 3]}. */
    public SDVariable forward(SDVariable x) {
        return classifier.forward(sd.math.tanh(hidden.forward(sd.math.tanh(encoder.forward(x)))));
    }

    public PlainLinear encoder() {
        return encoder;
    }

    public PlainLinear hidden() {
        return hidden;
    }

    public PlainLinear classifier() {
        return classifier;
    }
}
