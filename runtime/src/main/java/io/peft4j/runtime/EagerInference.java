package io.peft4j.runtime;

import java.util.function.Supplier;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.memory.conf.WorkspaceConfiguration;
import org.nd4j.linalg.api.memory.enums.AllocationPolicy;
import org.nd4j.linalg.api.memory.enums.LearningPolicy;
import org.nd4j.linalg.api.memory.enums.SpillPolicy;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Runs an eager forward pass (a model's {@code INDArray} forward methods, with whatever adapters are
 * on) with its intermediate arrays in one block of memory per thread that every pass reuses, and
 * returns the output copied out of it.
 *
 * <p>Eager ND4J ops allocate a new array for each result; on the development machine fresh native
 * memory cost more than the ops themselves for large arrays (page faults and zero-filling): an eager
 * pass of a 4-layer encoder over {@code [16, 64]} tokens took about twice as long without this as
 * with it, while for a one-token decoding step it made no difference (BENCHMARKS.md). Adapter
 * parameters that an eager call creates (a bottleneck adapter's first call) are allocated outside it.
 * Nothing here is CPU-specific: workspaces are ND4J's, on every backend.
 */
public final class EagerInference {
    private static final WorkspaceConfiguration MEMORY = WorkspaceConfiguration.builder()
            .initialSize(0)
            .policyAllocation(AllocationPolicy.OVERALLOCATE)
            .overallocationLimit(0.2)
            .policyLearning(LearningPolicy.FIRST_LOOP)
            .policySpill(SpillPolicy.REALLOCATE)
            .build();
    private static final String WORKSPACE = "peft4j-eager-inference";

    private EagerInference() {
    }

    /**
     * Runs {@code forward} and returns its result, detached from the reused memory. Arrays it creates
     * that must outlive the call (caches) must be allocated under
     * {@code Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()}. Not to be nested: the inner call would
     * reuse the memory the outer one still reads.
     */
    public static INDArray run(Supplier<INDArray> forward) {
        try (MemoryWorkspace pass = Nd4j.getWorkspaceManager().getAndActivateWorkspace(MEMORY, WORKSPACE)) {
            return forward.get().detach();
        }
    }
}
