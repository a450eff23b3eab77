package io.peft4j.samples;

import java.util.SplittableRandom;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.DataSet;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A synthetic sequence classification task and a shifted version of it.
 *
 * <p>Each sequence of {@code T} tokens holds filler tokens, exactly one keyword {@code k} (token
 * ids {@code 0 … classes−1}) at a random position and, in half of the sequences, the marker token
 * {@code NOT} at another position. In the <em>base</em> task the label is {@code k} and the marker
 * is noise; in the <em>shifted</em> task the marker flips the label to {@code (k + 1) mod classes}.
 * A model trained on the base task therefore starts at about 50 % on the shifted one, and must learn
 * to attend to the marker.
 *
 * <p>Features {@code [n, T]} INT32 token ids; labels {@code [n, classes]} one-hot FLOAT.
 */
public final class KeywordTask {

    private final int classes;
    private final int vocabulary;
    private final int sequenceLength;

    public KeywordTask(int classes, int vocabulary, int sequenceLength) {
        if (vocabulary < classes + 2) {
            throw new IllegalArgumentException("vocabulary " + vocabulary + " leaves no filler tokens for " + classes + " classes");
        }
        this.classes = classes;
        this.vocabulary = vocabulary;
        this.sequenceLength = sequenceLength;
    }

    /** The marker token id. */
    public int notToken() {
        return classes;
    }

    public DataSet generate(int examples, boolean shifted, long seed) {
        SplittableRandom random = new SplittableRandom(seed);
        int[][] tokens = new int[examples][sequenceLength];
        float[][] labels = new float[examples][classes];
        int firstFiller = classes + 1;
        for (int row = 0; row < examples; row++) {
            for (int t = 0; t < sequenceLength; t++) {
                tokens[row][t] = firstFiller + random.nextInt(vocabulary - firstFiller);
            }
            int keyword = random.nextInt(classes);
            int keywordAt = random.nextInt(sequenceLength);
            tokens[row][keywordAt] = keyword;
            boolean negated = random.nextBoolean();
            if (negated) {
                int markerAt = (keywordAt + 1 + random.nextInt(sequenceLength - 1)) % sequenceLength;
                tokens[row][markerAt] = notToken();
            }
            labels[row][shifted && negated ? (keyword + 1) % classes : keyword] = 1f;
        }
        INDArray features = Nd4j.createFromArray(tokens);
        return new DataSet(features, Nd4j.createFromArray(labels));
    }
}
