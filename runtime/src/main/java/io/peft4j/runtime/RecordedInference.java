package io.peft4j.runtime;

import io.peft4j.runtime.internal.RecordedStep;
import java.util.ArrayList;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.nd4j.autodiff.listeners.Listener;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A SameDiff graph's forward pass to fixed outputs, run by SameDiff the first two times it sees a
 * placeholder shape (recording the second) and replayed from the recording after that: the same ops with the same arguments, one native context
 * each, into buffers allocated once, without SameDiff's per-op scheduling and allocation.
 *
 * <pre>{@code
 * RecordedInference classify = RecordedInference.of(peft.sameDiff(), "logits");
 * INDArray logits = classify.output(Map.of("ids", ids, "mask", mask)).get("logits");   // [batch, classes]
 * }</pre>
 *
 * <p>Shapes: whatever the graph takes; each placeholder shape that comes again gets its own
 * recording (the three most recent are kept); shapes seen once cost nothing extra. Outputs are copies, yours to
 * keep. The values are SameDiff's: the replay runs SameDiff's own ops on the same inputs. A graph with
 * random ops (dropout at inference) or control flow always runs in SameDiff. After anything changes
 * the graph's ops or variables, or replaces a parameter's array (loading another adapter, merging),
 * the next call records again; values written into a parameter's array in place are simply read.
 * Not thread-safe: use one per thread.
 */
public final class RecordedInference {
    private static final int MAX_RECORDINGS = 3;

    private final SameDiff sameDiff;
    private final List<String> outputs;
    private final List<RecordedStep> recordings = new ArrayList<>();
    private final Set<String> seenOnce = new HashSet<>();
    private int recordedOps = -1;
    private int recordedVariables = -1;
    private int replayed;
    private boolean refused;

    private RecordedInference(SameDiff sameDiff, List<String> outputs) {
        this.sameDiff = sameDiff;
        this.outputs = outputs;
    }

    /** Replays {@code sameDiff}'s forward pass to {@code outputs} (variable names). */
    public static RecordedInference of(SameDiff sameDiff, String... outputs) {
        if (outputs.length == 0) {
            throw new IllegalArgumentException("Name at least one output variable of the graph to compute");
        }
        for (String output : outputs) {
            if (!sameDiff.hasVariable(output)) {
                throw new IllegalArgumentException("The graph has no variable '" + output + "' to compute; its outputs are named when"
                        + " the model builds them (SDVariable.name())");
            }
        }
        return new RecordedInference(sameDiff, List.of(outputs));
    }

    /** The outputs for {@code placeholders} (placeholder name to array), by output name. */
    public Map<String, INDArray> output(Map<String, INDArray> placeholders) {
        if (sameDiff.getOps().size() != recordedOps || sameDiff.getVariables().size() != recordedVariables) {
            recordings.clear();
            seenOnce.clear();
            refused = false;
            recordedOps = sameDiff.getOps().size();
            recordedVariables = sameDiff.getVariables().size();
        }
        for (RecordedStep recording : recordings) {
            if (recording.accepts(placeholders)) {
                replayed++;
                return recording.output(placeholders);
            }
        }
        if (refused || !RecordedStep.replayable(sameDiff, false) || seenOnce.add(RecordedStep.signature(placeholders))) {
            return sameDiff.output(placeholders, outputs.toArray(String[]::new));
        }
        RecordedStep.Recorder recorder = new RecordedStep.Recorder(Operation.INFERENCE);
        List<Listener> listeners = List.of(recorder);
        Map<String, INDArray> computed = sameDiff.output(placeholders, listeners, outputs.toArray(String[]::new));
        RecordedStep recording = RecordedStep.build(sameDiff, recorder, placeholders, Map.of(), List.of(), outputs);
        if (recording == null) {
            refused = true; // something in this graph cannot be replayed (RecordedStep.build says what it refuses)
        } else {
            if (recordings.size() == MAX_RECORDINGS) {
                recordings.remove(0);
            }
            recordings.add(recording);
        }
        return computed;
    }

    /** How many calls were replayed rather than run by SameDiff. */
    public int replayedCount() {
        return replayed;
    }
}
