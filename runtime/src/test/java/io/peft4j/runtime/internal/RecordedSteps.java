package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.ProgressListener;
import io.peft4j.runtime.SameDiffTrainer;
import io.peft4j.runtime.TrainingReport;
import io.peft4j.runtime.training.ListBatches;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.learning.config.Adam;

/**
 * What the replay and fusion tests share: recording a graph's outputs, training it on random
 * batches, comparing to rounding, a system property for a while.
 */
final class RecordedSteps {
    private RecordedSteps() {
    }

    /** A recording of {@code outputs} of {@code sd} for these placeholders. */
    static RecordedStep record(SameDiff sd, Map<String, INDArray> placeholders, String... outputs) {
        RecordedStep.Recorder recorder = new RecordedStep.Recorder(Operation.INFERENCE);
        sd.output(placeholders, List.of(recorder), outputs);
        RecordedStep step = RecordedStep.build(sd, recorder, placeholders, Map.of(), List.of(), List.of(outputs));
        assertNotNull(step, "the graph can be replayed");
        return step;
    }

    /**
     * Trains {@code sd} (placeholders {@code x} and {@code y}, Adam at {@code learningRate}) on
     * {@code batches} batches {@code x} of {@code shape} with targets {@code x · target}, drawn from
     * seed 5, for {@code epochs} epochs through {@link SameDiffTrainer#fit}; returns copies of the named
     * parameters.
     */
    static INDArray[] train(SameDiff sd, long[] shape, int batches, double target, int epochs, double learningRate, String... parameters) {
        Nd4j.getRandom().setSeed(5);
        List<org.nd4j.linalg.dataset.api.MultiDataSet> data = new ArrayList<>();
        for (int i = 0; i < batches; i++) {
            INDArray x = Nd4j.randn(DataType.FLOAT, shape);
            data.add(new MultiDataSet(x, x.mul(target)));
        }
        TrainingConfig config = TrainingConfig.builder().updater(new Adam(learningRate)).dataSetFeatureMapping("x").dataSetLabelMapping("y")
                .build();
        TrainingReport report = SameDiffTrainer.fit(sd, config, new ListBatches(data), epochs, new ProgressListener(null, 1));
        assertEquals(batches * epochs, report.losses().length);
        INDArray[] values = new INDArray[parameters.length];
        for (int i = 0; i < parameters.length; i++) {
            values[i] = sd.getArrForVarName(parameters[i]).dup();
        }
        return values;
    }

    /** Relative to the largest magnitude: gradients of a sum over many terms round in another order. */
    static void assertClose(INDArray expected, INDArray actual, double tolerance, String what) {
        double scale = Math.max(expected.amaxNumber().doubleValue(), 1e-30);
        double difference = expected.sub(actual).amaxNumber().doubleValue();
        assertTrue(difference <= tolerance * scale, what + ": largest difference " + difference + " against largest value " + scale);
    }

    /** {@code action} with system property {@code name} set to {@code value}, restored after. */
    static <T> T withProperty(String name, String value, Supplier<T> action) {
        String previous = System.getProperty(name);
        System.setProperty(name, value);
        try {
            return action.get();
        } finally {
            if (previous == null) {
                System.clearProperty(name);
            } else {
                System.setProperty(name, previous);
            }
        }
    }
}
