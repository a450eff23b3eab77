package io.peft4j.samples.spam;

import io.peft4j.samples.minilm.MiniLm;
import io.peft4j.samples.minilm.MiniLmConfig;
import io.peft4j.samples.transformer.Linear;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * all-MiniLM-L6-v2 with a linear classifier on its sentence embedding: token ids, token types and
 * mask {@code [batch, T]} to logits {@code [batch, 2]} (ham, spam). Field names follow Hugging Face's
 * {@code BertForSequenceClassification} ({@code bert.encoder.layer.0...}, {@code classifier}).
 */
public final class SpamClassifier {
    /** The Hugging Face model the encoder's weights come from, as adapters name their base. */
    public static final String BASE_MODEL = "sentence-transformers/all-MiniLM-L6-v2";

    final MiniLm bert;
    final Linear classifier;

    public SpamClassifier(SameDiff sd, Map<String, INDArray> pretrained, long seed) {
        this.bert = new MiniLm(sd, MiniLmConfig.ALL_MINILM_L6_V2);
        this.classifier = new Linear(sd, "classifier", MiniLmConfig.ALL_MINILM_L6_V2.hidden(), 2,
                Nd4j.getRandomFactory().getNewRandomInstance(seed));
        Map<String, INDArray> withHead = new java.util.HashMap<>(pretrained);
        withHead.put("classifier.weight", sd.getVariable("classifier.weight").getArr());
        withHead.put("classifier.bias", sd.getVariable("classifier.bias").getArr());
        bert.load(withHead);
    }

    public SDVariable forward(SDVariable ids, SDVariable types, SDVariable mask) {
        return classifier.forward(bert.sentenceEmbedding(ids, types, mask));
    }

    public SameDiff sameDiff() {
        return bert.sameDiff();
    }
}
