package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.List;
import java.util.Map;
import java.util.function.Supplier;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

/** What the fusion tests share: recording a graph's outputs, comparing to rounding, a system property for a while. */
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
