package io.peft4j.runtime.internal;

import io.peft4j.runtime.NonFinitePolicy;
import io.peft4j.runtime.NonFiniteTrainingException;
import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Loss;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.autodiff.samediff.internal.Variable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.api.MultiDataSet;
import org.nd4j.linalg.learning.GradientUpdater;

/**
 * Watches every training step for a non-finite loss or trainable gradient. Such a step is undone
 * (parameters and optimizer state put back as they were before it, and the iteration not counted),
 * then training stops with a {@link NonFiniteTrainingException} or, if asked, goes on with the next
 * batch. The undo keeps a copy of the trainable parameters and their optimizer state, taken before
 * each step: cheap for adapters; for very large trainable sets (full fine-tuning) it is skipped unless
 * batches are to be skipped, and stopping then leaves the failed step's values in place (the message says so).
 */
public final class NonFiniteGuard extends BaseListener {

    /** Above this many parameter and optimizer-state elements, a stopping guard does not copy them every step. */
    static final long UNDO_LIMIT = 8_000_000;

    private final SameDiff trained;
    private final NonFinitePolicy policy;
    private final Map<String, INDArray> parameters = new HashMap<>();
    private final Map<String, Map<String, INDArray>> updaterStates = new HashMap<>();
    private boolean undoable;
    private long elements;
    private String badVariable;
    private int skipped;

    /**
     * @param trained the graph being trained (listeners are called with SameDiff's gradient function, which
     *                shares its arrays but not its optimizer state)
     */
    public NonFiniteGuard(SameDiff trained, NonFinitePolicy policy) {
        this.trained = trained;
        this.policy = policy;
    }

    /** How many batches were skipped. */
    public int skipped() {
        return skipped;
    }

    @Override
    public boolean isActive(Operation operation) {
        return operation == Operation.TRAINING;
    }

    @Override
    public void iterationStart(SameDiff gradients, At at, MultiDataSet data, long etlTimeMs) {
        badVariable = null;
        snapshot();
    }

    /** Copies the trainable parameters and their optimizer state (the trainer has created the updaters before training). */
    private void snapshot() {
        SameDiff sd = trained;
        Map<String, GradientUpdater> updaters = sd.getUpdaterMap();
        elements = 0;
        for (SDVariable variable : sd.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                elements += variable.getArr().length() * (1 + stateArrays(updaters, variable.name()));
            }
        }
        undoable = policy == NonFinitePolicy.SKIP_BATCH || elements <= UNDO_LIMIT;
        if (!undoable) {
            return;
        }
        for (SDVariable variable : sd.variables()) {
            if (variable.getVariableType() == VariableType.VARIABLE) {
                copyInto(parameters, variable.name(), variable.getArr());
                GradientUpdater<?> updater = updaters == null ? null : updaters.get(variable.name());
                if (updater != null && updater.getState() != null) {
                    Map<String, INDArray> state = updaterStates.computeIfAbsent(variable.name(), name -> new HashMap<>());
                    updater.getState().forEach((key, value) -> copyInto(state, key, value));
                }
            }
        }
    }

    /** Copies {@code value} into the buffer kept under {@code key}, allocated once: a step allocates nothing. */
    private static void copyInto(Map<String, INDArray> buffers, String key, INDArray value) {
        INDArray buffer = buffers.get(key);
        if (buffer == null || buffer.dataType() != value.dataType() || !Arrays.equals(buffer.shape(), value.shape())) {
            buffers.put(key, value.dup());
        } else {
            buffer.assign(value);
        }
    }

    private static int stateArrays(Map<String, GradientUpdater> updaters, String name) {
        GradientUpdater<?> updater = updaters == null ? null : updaters.get(name);
        return updater == null || updater.getState() == null ? 0 : updater.getState().size();
    }

    @Override
    public void preUpdate(SameDiff gradients, At at, Variable variable, INDArray update) {
        if (badVariable == null && !finite(update)) {
            badVariable = variable.getName();
        }
    }

    /** {@link #preUpdate} for an update whose finiteness the step already knows (Adam's kernel checks as it writes). */
    void preUpdate(Variable variable, boolean updateFinite) {
        if (badVariable == null && !updateFinite) {
            badVariable = variable.getName();
        }
    }

    @Override
    public void iterationDone(SameDiff gradients, At at, MultiDataSet dataSet, Loss loss) {
        SameDiff sd = trained;
        boolean lossBad = loss != null && !Double.isFinite(loss.totalLoss());
        if (badVariable == null && !lossBad) {
            return;
        }
        String what = badVariable != null ? "a non-finite gradient" : "a non-finite loss (" + loss.totalLoss() + ")";
        if (undoable) {
            undo(sd);
        }
        if (policy == NonFinitePolicy.SKIP_BATCH) {
            skipped++;
            badVariable = null;
            return;
        }
        NonFiniteTrainingException error = new NonFiniteTrainingException(at.iteration(), badVariable, what);
        if (!undoable) {
            error.addSuppressed(new IllegalStateException("the step could not be undone: its " + elements + " parameter and "
                    + "optimizer values were too many to copy before every step; reload the last checkpoint"));
        }
        throw error;
    }

    private void undo(SameDiff sd) {
        parameters.forEach((name, value) -> sd.getVariable(name).getArr().assign(value));
        Map<String, GradientUpdater> updaters = sd.getUpdaterMap();
        updaterStates.forEach((name, state) -> {
            Map<String, INDArray> live = updaters.get(name).getState();
            state.forEach((key, value) -> live.get(key).assign(value));
        });
        sd.getTrainingConfig().setIterationCount(Math.max(0, sd.getTrainingConfig().getIterationCount() - 1));
    }

    /**
     * One reduction in the common case: a NaN or infinite element makes the sum NaN or infinite, so a finite
     * sum proves every element finite. A non-finite sum of finite elements (overflow) is told apart exactly.
     */
    private static boolean finite(INDArray values) {
        if (Double.isFinite(values.sumNumber().doubleValue())) {
            return true;
        }
        INDArray wide = values.dataType() == DataType.HALF || values.dataType() == DataType.BFLOAT16 ? values.castTo(DataType.FLOAT) : values;
        return !(wide.isNaN().any() || wide.isInfinite().any());
    }
}
