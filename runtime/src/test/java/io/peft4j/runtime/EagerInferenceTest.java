package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/** Eager passes in reused memory: results that outlive it, and one block of memory however many passes. */
class EagerInferenceTest {

    @Test
    void theResultOutlivesThePassAndLaterPassesLeaveItAlone() {
        INDArray x = Nd4j.linspace(DataType.FLOAT, 1, 12, 1).reshape(3, 4);
        INDArray first = EagerInference.run(() -> Transforms.tanh(x.mmul(x.transpose()), true).addi(1));
        INDArray expected = Transforms.tanh(x.mmul(x.transpose()), true).addi(1);
        for (int pass = 0; pass < 5; pass++) {
            double factor = pass;
            EagerInference.run(() -> x.mul(factor).add(7));
        }

        assertFalse(first.isAttached(), "detached from the pass's memory");
        assertEquals(expected, first);
    }

    @Test
    void passesOfOneThreadShareOneBlockOfMemory() {
        EagerInference.run(() -> Nd4j.ones(DataType.FLOAT, 64, 64).mul(2));
        int workspaces = Nd4j.getWorkspaceManager().getAllWorkspacesForCurrentThread().size();
        for (int pass = 0; pass < 10; pass++) {
            EagerInference.run(() -> Nd4j.ones(DataType.FLOAT, 128, 32).mul(3));
        }
        assertEquals(workspaces, Nd4j.getWorkspaceManager().getAllWorkspacesForCurrentThread().size());
    }
}
