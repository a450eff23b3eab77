package io.peft4j.runtime.training;

import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.TrainingOptions;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/**
 * One LoRA training run of {@link TwoLayerModel} on 8 fixed batches per epoch: in a test, or as the
 * program a resume test starts in a JVM of its own and kills ({@code main(checkpointDir, epochs, stepMillis)}).
 */
public final class TrainingRun {

    static final int BATCHES = 8;

    final TwoLayerModel model = new TwoLayerModel(DataType.FLOAT, 1);
    final PeftModel peft;

    TrainingRun() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
        SameDiff sd = model.sd;
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, TwoLayerModel.IN);
        SDVariable y = sd.placeHolder("y", DataType.FLOAT, -1, TwoLayerModel.OUT);
        peft = PeftModel.builder(model).seed(7).attach();
        sd.loss.meanSquaredError("loss", y, model.forward(x), null);
    }

    /** The batches; {@code poisoned} (or −1) gets a NaN feature. */
    static List<org.nd4j.linalg.dataset.api.MultiDataSet> batches(int poisoned) {
        org.nd4j.linalg.api.rng.Random random = Nd4j.getRandomFactory().getNewRandomInstance(11);
        List<org.nd4j.linalg.dataset.api.MultiDataSet> batches = new ArrayList<>();
        for (int i = 0; i < BATCHES; i++) {
            INDArray features = Nd4j.rand(random, 4, TwoLayerModel.IN).castTo(DataType.FLOAT).subi(0.5);
            INDArray labels = Nd4j.rand(random, 4, TwoLayerModel.OUT).castTo(DataType.FLOAT);
            if (i == poisoned) {
                features.putScalar(0, 0, Float.NaN);
            }
            batches.add(new MultiDataSet(features, labels));
        }
        return batches;
    }

    TrainingReport train(int epochs, List<org.nd4j.linalg.dataset.api.MultiDataSet> batches, TrainingOptions options, ProgressListener progress) {
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.02)).dataSetFeatureMapping("x").dataSetLabelMapping("y").build();
        return peft.train(config, new ListBatches(batches), epochs, progress, options);
    }

    List<float[]> adapter() {
        List<float[]> values = new ArrayList<>();
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            values.add(layer.weights().a().dup().data().asFloat());
            values.add(layer.weights().b().dup().data().asFloat());
        }
        return values;
    }

    /** Trains with a checkpoint every 3 steps, taking at least {@code stepMillis} per step, printing every step. */
    public static void main(String[] args) {
        Path directory = Path.of(args[0]);
        int epochs = Integer.parseInt(args[1]);
        long stepMillis = Long.parseLong(args[2]);
        TrainingRun run = new TrainingRun();
        List<org.nd4j.linalg.dataset.api.MultiDataSet> slow = new ArrayList<>();
        for (org.nd4j.linalg.dataset.api.MultiDataSet batch : batches(-1)) {
            slow.add(new MultiDataSet(batch.getFeatures(), batch.getLabels()) {
                @Override
                public INDArray[] getFeatures() {
                    pause(stepMillis);
                    return super.getFeatures();
                }
            });
        }
        run.train(epochs, slow, TrainingOptions.defaults().withCheckpoints(directory, 3).withResume(true), new ProgressListener(System.out, 1));
        System.out.println("finished");
    }

    private static void pause(long millis) {
        try {
            Thread.sleep(millis);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }
}
