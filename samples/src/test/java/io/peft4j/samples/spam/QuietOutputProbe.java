package io.peft4j.samples.spam;

import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.samples.minilm.MiniLmTokenizer;
import io.peft4j.samples.minilm.OnnxInitializers;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.learning.config.Adam;

/**
 * The main job's noisy path in small, for {@link QuietOutputTest}: all-MiniLM-L6-v2 from its ONNX file,
 * DJL's tokenizer, LoRA attached with a trained head, a graph built and two training steps, run in a JVM
 * of its own with the samples' logging configuration.
 */
public final class QuietOutputProbe {
    private QuietOutputProbe() {
    }

    public static void main(String[] args) throws Exception {
        Map<String, INDArray> pretrained;
        try (InputStream onnx = QuietOutputProbe.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
            pretrained = OnnxInitializers.read(onnx);
        }
        SpamClassifier model = new SpamClassifier(SameDiff.create(), pretrained, 42);
        PeftModel peft = PeftModel.builder(model).only(LoRA.class).alsoTrain("classifier").attach();
        peft.printTrainableParameters();
        SpamGraph graph = new SpamGraph(model);
        List<Email> emails = new ArrayList<>();
        for (int i = 0; i < 8; i++) {
            emails.add(new Email("probe/" + i, i % 2 == 0, i % 2 == 0 ? "Win a free prize now, click here" : "Meeting at noon, see you"));
        }
        SpamBatches batches;
        try (MiniLmTokenizer tokenizer = new MiniLmTokenizer()) {
            batches = new SpamBatches(emails, tokenizer, 16, 4);
        }
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(1e-3))
                .dataSetFeatureMapping(SpamGraph.IDS, SpamGraph.TYPES, SpamGraph.MASK).dataSetLabelMapping(SpamGraph.LABELS).build();
        peft.train(config, batches, 1, new ProgressListener(System.out, 1, batches.size()));
        batches.reset();
        System.out.printf("probe accuracy %.2f%n", graph.evaluate(batches).accuracy());
    }
}
