package io.peft4j.spark;

import java.io.Serializable;
import java.util.List;
import java.util.Map;

/**
 * What worker 0 hands the driver at the end of a run (every worker holds the same parameters).
 *
 * @param parameters      trained values by variable name
 * @param losses          the global batch's mean loss at each step, the first steps from the checkpoint resumed, if any
 * @param messageBytes    the Base64 message one worker sent per step (gradients and loss)
 * @param stepSeconds     the wall time of each step this attempt ran, exchange included
 * @param exchangeSeconds the part of each step spent in {@code allGather} (waiting for the other workers included)
 * @param resumedAtStep   the step this attempt started at (0 unless resumed from a checkpoint)
 */
record WorkerResult(Map<String, TensorBytes> parameters, List<Double> losses, long messageBytes, List<Double> stepSeconds,
                    List<Double> exchangeSeconds, int resumedAtStep) implements Serializable {
}
