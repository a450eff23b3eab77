package io.peft4j.runtime.internal;

import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Loss;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.dataset.api.MultiDataSet;

/**
 * Writes a training checkpoint after every {@code every} steps. Runs after the non-finite guard, so a
 * step it undid is never written.
 */
public final class CheckpointListener extends BaseListener {

    private final SameDiff trained;
    private final TrainingCheckpoints checkpoints;
    private final int every;
    private int batchInEpoch;
    private int firstEpochStart;

    /**
     * @param trained     the graph being trained
     * @param startBatch  the batch of the current epoch training starts at (a resumed position)
     */
    public CheckpointListener(SameDiff trained, TrainingCheckpoints checkpoints, int every, int startBatch) {
        this.trained = trained;
        this.checkpoints = checkpoints;
        this.every = every;
        this.firstEpochStart = startBatch;
    }

    @Override
    public boolean isActive(Operation operation) {
        return operation == Operation.TRAINING;
    }

    @Override
    public void epochStart(SameDiff sd, At at) {
        batchInEpoch = firstEpochStart;
        firstEpochStart = 0;
    }

    @Override
    public void iterationDone(SameDiff gradients, At at, MultiDataSet dataSet, Loss loss) {
        SameDiff sd = trained;
        batchInEpoch++;
        int done = sd.getTrainingConfig().getIterationCount() + 1; // the count this step ends with
        if (every > 0 && done % every == 0) {
            long[] random = TrainingCheckpoints.randomState();
            checkpoints.write(sd, new TrainingCheckpoints.Position(done, sd.getTrainingConfig().getEpochCount(), batchInEpoch,
                    random[0], random[1]));
        }
    }
}
