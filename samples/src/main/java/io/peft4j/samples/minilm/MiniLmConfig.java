package io.peft4j.samples.minilm;

/**
 * The sizes of a BERT encoder; {@link #ALL_MINILM_L6_V2} is sentence-transformers' all-MiniLM-L6-v2.
 *
 * @param vocabulary     word-piece vocabulary size
 * @param maxPositions   learned positions
 * @param typeVocabulary token types (segments)
 * @param hidden         d
 * @param heads          attention heads
 * @param layers         encoder layers
 * @param intermediate   feed-forward inner width
 * @param layerNormEps   variance epsilon of every LayerNorm
 */
public record MiniLmConfig(int vocabulary, int maxPositions, int typeVocabulary, int hidden, int heads, int layers,
                           int intermediate, double layerNormEps) {

    public static final MiniLmConfig ALL_MINILM_L6_V2 = new MiniLmConfig(30522, 512, 2, 384, 12, 6, 1536, 1e-12);
}
