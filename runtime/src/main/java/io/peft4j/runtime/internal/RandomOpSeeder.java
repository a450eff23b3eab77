package io.peft4j.runtime.internal;

import java.util.Set;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.autodiff.listeners.At;
import org.nd4j.autodiff.listeners.BaseListener;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.internal.SameDiffOp;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.api.ops.OpContext;
import org.nd4j.linalg.api.ops.RandomOp;
import org.nd4j.linalg.api.ops.random.impl.Linspace;
import org.nd4j.linalg.api.ops.random.impl.Range;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Seeds each of a training step's random custom ops from ND4J's random generator, so that they draw
 * new values at every step.
 *
 * <p>ND4J M2.1 runs a random custom op ({@code DistributionUniform}, {@code RandomBernoulli}, ...) with
 * the random state of the op context SameDiff builds for it, which is the same at every execution: a
 * graph's uniform draw, and LoRA's dropout mask drawn from it, repeated identically at every step,
 * whatever {@code Nd4j.getRandom()} was seeded with. This listener sets the context's state from two
 * draws of {@code Nd4j.getRandom()} just before each such op runs: masks differ from step to step and
 * repeat when ND4J's generator is seeded alike. Replayed steps ({@link RecordedStep}) call it at the
 * same points, so they draw what SameDiff's steps would.
 */
public final class RandomOpSeeder extends BaseListener {
    private static final String RANDOM_OPS = "org.nd4j.linalg.api.ops.random.";
    /** Deterministic ops that ND4J keeps among its random ones. */
    private static final Set<Class<?>> NOT_RANDOM = Set.of(Range.class, Linspace.class);

    @Override
    public boolean isActive(Operation operation) {
        return operation == Operation.TRAINING;
    }

    @Override
    public void preOpExecution(SameDiff sd, At at, SameDiffOp op, OpContext context) {
        if (drawsFromContext(op.getOp())) {
            context.setRngStates(Nd4j.getRandom().nextLong(), Nd4j.getRandom().nextLong());
        }
    }

    /** Random ops of any kind (legacy {@link RandomOp}s and random custom ops). */
    static boolean isRandom(DifferentialFunction function) {
        return function instanceof RandomOp
                || function.getClass().getName().startsWith(RANDOM_OPS) && !NOT_RANDOM.contains(function.getClass());
    }

    /** Random custom ops, which take their random state from the op context this listener seeds. */
    static boolean drawsFromContext(DifferentialFunction function) {
        return isRandom(function) && function instanceof DynamicCustomOp && !(function instanceof RandomOp);
    }
}
