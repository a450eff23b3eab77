package io.peft4j.samples.minilm;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.langchain4j.model.embedding.onnx.allminilml6v2.AllMiniLmL6V2EmbeddingModel;
import java.io.InputStream;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The Java all-MiniLM-L6-v2, loaded from the ONNX initializers, against a reference no one here
 * wrote: langchain4j's {@code AllMiniLmL6V2EmbeddingModel}, which runs the same ONNX file in ONNX
 * Runtime. Both embed each sentence alone.
 */
class MiniLmParityTest {

    static final List<String> SENTENCES = List.of(
            "The quick brown fox jumps over the lazy dog.",
            "A man is playing a guitar on the street.",
            "Win a FREE iPhone now!!! Click here to claim your prize.",
            "Your invoice #4821 is attached; payment is due within 30 days.",
            "Meeting moved to 3pm tomorrow, same room.",
            "I can't believe it's already December.",
            "Photosynthesis converts light energy into chemical energy.",
            "The stock market fell sharply after the announcement.",
            "Please reset my password, I forgot it again.",
            "Das ist ein deutscher Satz mit Umlauten: Größe, Übermut.",
            "C'est la vie, mon ami.",
            "日本語のテキストもトークン化できます。",
            "Emojis 😀🚀 and symbols ©®™ appear in emails too.",
            "http://example.com/unsubscribe?id=12345&token=abc",
            "URGENT: your account has been suspended, verify your identity immediately",
            "Lunch?",
            "ok",
            "Hello, world.",
            "To be, or not to be, that is the question.",
            "She sells seashells by the seashore.",
            "The mitochondria is the powerhouse of the cell.",
            "Re: Re: Fwd: quarterly numbers (draft v3)",
            "Cheap meds online without prescription, discreet shipping worldwide.",
            "Can you review my pull request before the release branch is cut?",
            "The committee will reconvene after the holiday recess.",
            "E = mc^2 is probably the best-known equation in physics.",
            "Don't forget to bring the charger, the cable, and the adapter.",
            "1234567890",
            "Mr. O'Neil's car was towed from 5th Avenue at 10:45 p.m.",
            "the the the the the the the the",
            "Congratulations! You have been selected for a $1,000 Walmart gift card.",
            "Our new restaurant opens downtown this Friday evening.",
            "Kernel panic - not syncing: VFS: Unable to mount root fs.",
            "Neural networks approximate functions by composing simple layers.",
            "He said, \"I'll be there in five minutes,\" and left.",
            "Dear friend, I am a prince and I need your help transferring funds.",
            "The weather forecast predicts heavy rain over the weekend.",
            "Low-rank adaptation trains a small number of parameters.",
            "Can machines think?",
            "A journey of a thousand miles begins with a single step.",
            "The patient was discharged after a full recovery.",
            "Click the link below to confirm your subscription.",
            "Tabs\tand\nnewlines\nare whitespace.",
            "ALL CAPS SHOUTING IS RARELY A GOOD IDEA",
            "A sentence that is somewhat longer than the others, with several clauses, commas, and a few "
                    + "technical words like tokenizer, embedding, attention and normalisation, to exercise longer inputs.",
            "Java, Kotlin and Scala all run on the JVM.",
            "Remember the milk.",
            "Lorem ipsum dolor sit amet, consectetur adipiscing elit.",
            "The train to Boston leaves from platform 9.",
            "Thanks for your help yesterday!");

    @Test
    void javaModelMatchesOnnxRuntimeOnFiftySentences() throws Exception {
        assertEquals(50, SENTENCES.size());
        MiniLm model = new MiniLm(SameDiff.create(), MiniLmConfig.ALL_MINILM_L6_V2);
        try (InputStream onnx = getClass().getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
            model.load(OnnxInitializers.read(onnx));
        }
        SameDiff sd = model.sameDiff();
        SDVariable ids = sd.placeHolder("input_ids", DataType.INT32, -1, -1);
        SDVariable types = sd.placeHolder("token_type_ids", DataType.INT32, -1, -1);
        SDVariable mask = sd.placeHolder("attention_mask", DataType.INT32, -1, -1);
        SDVariable embedding = model.sentenceEmbedding(ids, types, mask);

        AllMiniLmL6V2EmbeddingModel reference = new AllMiniLmL6V2EmbeddingModel();
        double worstCosine = 1;
        double worstDifference = 0;
        try (MiniLmTokenizer tokenizer = new MiniLmTokenizer()) {
            for (String sentence : SENTENCES) {
                MiniLmTokenizer.Encoded encoded = tokenizer.encode(sentence);
                float[] ours = sd.output(Map.of(
                        "input_ids", Nd4j.createFromArray(new int[][] {encoded.ids()}),
                        "token_type_ids", Nd4j.createFromArray(new int[][] {encoded.typeIds()}),
                        "attention_mask", Nd4j.createFromArray(new int[][] {encoded.attentionMask()})),
                        embedding.name()).get(embedding.name()).data().asFloat();
                float[] theirs = reference.embed(sentence).content().vector();
                assertEquals(theirs.length, ours.length);
                double dot = 0;
                double oursNorm = 0;
                double theirsNorm = 0;
                for (int i = 0; i < ours.length; i++) {
                    dot += ours[i] * theirs[i];
                    oursNorm += ours[i] * ours[i];
                    theirsNorm += theirs[i] * theirs[i];
                    worstDifference = Math.max(worstDifference, Math.abs(ours[i] - theirs[i]));
                }
                worstCosine = Math.min(worstCosine, dot / Math.sqrt(oursNorm * theirsNorm));
            }
        }
        System.out.printf("MiniLM parity over %d sentences: worst cosine %.7f, worst |difference| %.3e%n", SENTENCES.size(),
                worstCosine, worstDifference);
        assertTrue(worstCosine >= 0.9999, "worst cosine " + worstCosine);
        assertTrue(worstDifference <= 1e-4, "worst absolute difference " + worstDifference);
    }
}
