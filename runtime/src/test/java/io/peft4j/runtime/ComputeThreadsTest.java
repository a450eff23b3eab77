package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.factory.Nd4j;

/** The thread count reaches ND4J and its BLAS; a bad count is refused with the setting named. */
class ComputeThreadsTest {

    @Test
    void propertyThenExplicitCountReachNd4j() {
        int before = ComputeThreads.current();
        try {
            System.setProperty(ComputeThreads.PROPERTY, "two");
            PeftException bad = assertThrows(PeftException.class, ComputeThreads::apply);
            assertTrue(bad.getMessage().contains("-Dpeft4j.threads=two"), bad.getMessage());

            System.setProperty(ComputeThreads.PROPERTY, "1");
            assertEquals(1, ComputeThreads.apply());
            assertEquals(1, ComputeThreads.current());
            assertEquals(1, Nd4j.factory().blas().getMaxThreads());

            System.setProperty(ComputeThreads.PROPERTY, "3");
            ComputeThreads.set(2);
            assertEquals(2, ComputeThreads.apply(), "an explicit count wins over the property");
            assertEquals(2, ComputeThreads.current());
            assertEquals(2, Nd4j.factory().blas().getMaxThreads());
        } finally {
            System.clearProperty(ComputeThreads.PROPERTY);
            ComputeThreads.set(before);
        }
    }

    @Test
    void refusesFewerThanOneThread() {
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> ComputeThreads.set(0));
        assertTrue(error.getMessage().contains("got 0"), error.getMessage());
    }

    @Test
    void spinningWorkersLeaveOneCoreForTheDrivingThread() {
        assertEquals(1, ComputeThreads.defaultCount(2, null));
        assertEquals(7, ComputeThreads.defaultCount(8, "ACTIVE"));
        assertEquals(1, ComputeThreads.defaultCount(1, null), "never fewer than one");
    }

    @Test
    void sleepingWorkersUseEveryCore() {
        assertEquals(2, ComputeThreads.defaultCount(2, "PASSIVE"));
        assertEquals(8, ComputeThreads.defaultCount(8, " passive "), "OpenMP reads the value case-insensitively");
    }

    @Test
    void defaultFollowsThisProcesssWaitPolicy() {
        assertEquals(ComputeThreads.defaultCount(Runtime.getRuntime().availableProcessors(), System.getenv("OMP_WAIT_POLICY")),
                ComputeThreads.defaultCount());
    }
}
