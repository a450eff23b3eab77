package io.peft4j.samples.benchmark;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import io.peft4j.runtime.PeftModel;
import io.peft4j.samples.transformer.TransformerClassifier;
import io.peft4j.samples.transformer.TransformerConfig;
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
 * The sample transformer: batch 16, sequence 64, hidden 256, 4 heads, 4 layers, FFN 1024, a
 * 1,000-token vocabulary and 1,000 classes per token. Tokens {@code [16, 64]}, class indices
 * {@code [16, 64]}, logits {@code [16, 64, 1000]}, softmax cross-entropy over every position. LoRA is
 * r = 8 on query and value; the adapter is a Pfeiffer bottleneck (d / 16) after each feed-forward block.
 */
final class SampleTransformerWorkload implements Workload {
    static final TransformerConfig SHAPES = new TransformerConfig(1000, 64, 256, 4, 4, 1024, 1000);
    static final int BATCH = 16;
    private static final String TOKENS = "tokens";
    private static final String LABELS = "labels";

    private final MultiDataSet batch;

    SampleTransformerWorkload() {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(7);
        INDArray tokens = Nd4j.rand(random, BATCH, SHAPES.sequenceLength()).muli(SHAPES.vocabulary()).castTo(DataType.INT32);
        INDArray classes = Nd4j.rand(random, BATCH, SHAPES.sequenceLength()).muli(SHAPES.classes()).castTo(DataType.INT32);
        this.batch = new MultiDataSet(new INDArray[] {tokens}, new INDArray[] {classes});
    }

    @Override
    public String description() {
        return "sample transformer (batch 16, sequence 64, hidden 256, 4 heads, 4 layers, FFN 1024, 1,000 classes per token)";
    }

    @Override
    public String pytorchModel() {
        return "transformer";
    }

    @Override
    public double forwardFlops() {
        double tokens = (double) BATCH * SHAPES.sequenceLength();
        double d = SHAPES.hidden();
        double perLayer = 4 * tokens * d * d * 2                            // query, key, value, output
                + 2 * tokens * SHAPES.sequenceLength() * d * 2              // scores and weighted values
                + 2 * tokens * d * SHAPES.feedForward() * 2;                // feed-forward up and down
        return tokens * SHAPES.vocabulary() * d * 2                         // one-hot embedding product
                + SHAPES.layers() * perLayer
                + tokens * d * SHAPES.classes() * 2;                        // per-token classifier
    }

    @Override
    public MultiDataSet batch() {
        return batch;
    }

    @Override
    public TrainingConfig trainingConfig() {
        return TrainingConfig.builder().updater(new Adam(1e-4)).dataSetFeatureMapping(TOKENS).dataSetLabelMapping(LABELS).build();
    }

    @Override
    public Model create(Method method) {
        TransformerClassifier model = new TransformerClassifier(SameDiff.create(), SHAPES, 1);
        PeftModel peft = switch (method) {
            case LORA -> PeftModel.builder(model).only(LoRA.class).attach();
            case ADAPTER -> PeftModel.builder(model).only(Adapter.class).attach();
            case BASE, FULL -> null;
        };
        SameDiff sd = model.sameDiff();
        return new Model(sd, peft, () -> {
            SDVariable tokens = sd.hasVariable(TOKENS) ? sd.getVariable(TOKENS)
                    : sd.placeHolder(TOKENS, DataType.INT32, -1, SHAPES.sequenceLength());
            SDVariable labels = sd.hasVariable(LABELS) ? sd.getVariable(LABELS)
                    : sd.placeHolder(LABELS, DataType.INT32, -1, SHAPES.sequenceLength());
            SDVariable logits = model.tokenLogits(tokens);
            SDVariable perToken = sd.loss.sparseSoftmaxCrossEntropy(logits.reshape(-1, SHAPES.classes()), labels.reshape(-1));
            sd.setLossVariables(perToken.mean());
            return logits.name();
        }, data -> Map.of(TOKENS, data.getFeatures(0)));
    }
}
