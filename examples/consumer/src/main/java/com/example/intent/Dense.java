package com.example.intent;

import io.peft4j.annotations.Weight;
import java.util.Random;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A fully connected layer {@code y = x · W + b}: input {@code [batch, in]}, weight {@code [in, out]},
 * bias {@code [out]}, output {@code [batch, out]}. Plain model code: the only peft4j type in it is
 * {@code @Weight}, which tells peft4j which variable LoRA adapts.
 */
public final class Dense {
    @Weight
    final SDVariable weight;
    final SDVariable bias;

    /** Glorot-uniform weight, zero bias; variables {@code <name>.weight} and {@code <name>.bias}. */
    public Dense(SameDiff sd, String name, int in, int out, Random random) {
        double bound = Math.sqrt(6.0 / (in + out));
        float[] values = new float[in * out];
        for (int i = 0; i < values.length; i++) {
            values[i] = (float) ((2 * random.nextDouble() - 1) * bound);
        }
        this.weight = sd.var(name + ".weight", Nd4j.create(values, new long[] {in, out}, DataType.FLOAT));
        this.bias = sd.var(name + ".bias", Nd4j.zeros(DataType.FLOAT, out));
    }

    public SDVariable forward(SDVariable x) {
        return x.mmul(weight).add(bias);
    }
}
