package com.example.intent;

import java.util.Random;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Four intents read from 32 features: features {@code [n, 32]} from N(0, 1), one-hot labels
 * {@code [n, 4]}. The intent is the group of eight features with the largest sum; the new release
 * renumbers the intents ({@code (group + 1) mod 4}), the shift the adapter learns.
 */
public final class IntentData {
    private IntentData() {
    }

    public static DataSet generate(int examples, boolean renumbered, long seed) {
        Random random = new Random(seed);
        float[] features = new float[examples * IntentModel.FEATURES];
        float[] labels = new float[examples * IntentModel.INTENTS];
        int groupSize = IntentModel.FEATURES / IntentModel.INTENTS;
        for (int example = 0; example < examples; example++) {
            int best = 0;
            double bestSum = Double.NEGATIVE_INFINITY;
            for (int group = 0; group < IntentModel.INTENTS; group++) {
                double sum = 0;
                for (int i = 0; i < groupSize; i++) {
                    float value = (float) random.nextGaussian();
                    features[example * IntentModel.FEATURES + group * groupSize + i] = value;
                    sum += value;
                }
                if (sum > bestSum) {
                    bestSum = sum;
                    best = group;
                }
            }
            int intent = renumbered ? (best + 1) % IntentModel.INTENTS : best;
            labels[example * IntentModel.INTENTS + intent] = 1;
        }
        INDArray x = Nd4j.create(features, new long[] {examples, IntentModel.FEATURES}, DataType.FLOAT);
        INDArray y = Nd4j.create(labels, new long[] {examples, IntentModel.INTENTS}, DataType.FLOAT);
        return new DataSet(x, y);
    }
}
