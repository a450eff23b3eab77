package io.peft4j.samples.transformer;

/**
 * The sizes of a {@link TransformerClassifier}.
 *
 * @param vocabulary     token ids are in {@code [0, vocabulary)}
 * @param sequenceLength T, the fixed length of every sequence
 * @param hidden         d, the model width
 * @param heads          attention heads (d must be divisible by it)
 * @param layers         encoder blocks
 * @param feedForward    the feed-forward inner width
 * @param classes        output classes
 */
public record TransformerConfig(int vocabulary, int sequenceLength, int hidden, int heads, int layers, int feedForward,
                                int classes) {
}
