package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.concurrent.atomic.AtomicInteger;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.factory.Nd4j;

/** Reused op contexts give each call's own result; derived arrays are computed once and outlive the passes. */
class EagerSessionTest {
    private static final Object LAYER = new Object();

    private static DynamicCustomOp transposedProduct() {
        return DynamicCustomOp.builder("xw_plus_b").addIntegerArguments(1L).build();
    }

    /** {@code x · W + b} through the session, with W given as {@code [out, in]}. */
    private static INDArray product(EagerSession session, Object owner, INDArray x, INDArray byOutput, INDArray bias) {
        INDArray y = Nd4j.createUninitialized(DataType.FLOAT, x.size(0), byOutput.size(0));
        return session.exec(owner, "xw_plus_b", EagerSessionTest::transposedProduct, y, x, byOutput, bias);
    }

    @Test
    void aReusedContextComputesEachCallFromItsOwnInputs() {
        INDArray w = Nd4j.linspace(DataType.FLOAT, 1, 12, 1).reshape(4, 3).subi(6).divi(5);
        INDArray b = Nd4j.createFromArray(0.5f, -0.25f, 2f);
        try (EagerSession session = new EagerSession()) {
            for (int rows = 1; rows <= 3; rows++) {
                INDArray x = Nd4j.rand(DataType.FLOAT, rows, 4);
                INDArray expected = x.mmul(w).addiRowVector(b);
                INDArray actual = session.run(() -> product(session, LAYER, x, w.transpose().dup('c'), b));
                assertTrue(expected.equalsWithEps(actual, 1e-6), rows + " rows: " + actual + " instead of " + expected);
            }
            assertEquals(1, session.reusedCount(), "one context for the three calls");
        }
    }

    @Test
    void equalOwnersAreStillTwoLayers() {
        record Layer(String name) {
        }
        Layer first = new Layer("same");
        Layer second = new Layer("same");
        INDArray x = Nd4j.ones(DataType.FLOAT, 1, 2);
        try (EagerSession session = new EagerSession()) {
            session.run(() -> {
                session.derived(first, "weight", () -> Nd4j.ones(DataType.FLOAT, 2, 2));
                session.derived(second, "weight", () -> Nd4j.zeros(DataType.FLOAT, 2, 2));
                return x;
            });
            assertEquals(2, session.reusedCount());
            assertEquals(4.0, session.derived(first, "weight", () -> Nd4j.zeros(DataType.FLOAT, 2, 2)).sumNumber().doubleValue());
        }
    }

    @Test
    void aDerivedArrayIsComputedOnceAndOutlivesThePasses() {
        AtomicInteger computed = new AtomicInteger();
        INDArray weight = Nd4j.linspace(DataType.FLOAT, 1, 6, 1).reshape(2, 3);
        try (EagerSession session = new EagerSession()) {
            INDArray[] seen = new INDArray[3];
            for (int pass = 0; pass < 3; pass++) {
                int at = pass;
                session.run(() -> {
                    seen[at] = session.derived(LAYER, "transposed", () -> {
                        computed.incrementAndGet();
                        return weight.transpose().dup('c');
                    });
                    return Nd4j.ones(DataType.FLOAT, 64, 64).mul(at);
                });
            }
            assertEquals(1, computed.get());
            assertSame(seen[0], seen[2]);
            assertFalse(seen[0].isAttached(), "kept outside the passes' reused memory");
            assertEquals(weight.transpose(), seen[0]);
        }
    }

    @Test
    void theSessionIsCurrentOnlyWhileItRunsAPass() {
        try (EagerSession session = new EagerSession()) {
            assertTrue(EagerSession.current().isEmpty());
            session.run(() -> {
                assertSame(session, EagerSession.current().orElseThrow());
                return Nd4j.ones(1);
            });
            assertTrue(EagerSession.current().isEmpty());
            IllegalStateException nested = assertThrows(IllegalStateException.class,
                    () -> session.run(() -> new EagerSession().run(() -> Nd4j.ones(1))));
            assertTrue(nested.getMessage().contains("do not nest"), nested.getMessage());
            assertTrue(EagerSession.current().isEmpty(), "a failed pass leaves no session current");
        }
    }

    @Test
    void aClosedSessionRunsNothing() {
        EagerSession session = new EagerSession();
        session.close();
        IllegalStateException closed = assertThrows(IllegalStateException.class, () -> session.run(() -> Nd4j.ones(1)));
        assertTrue(closed.getMessage().contains("closed"), closed.getMessage());
    }

    @Test
    void theOpsArgumentsComeFromItsFirstCall() {
        // A second call under the same name with another op keeps the first one's arguments: names stand for arguments.
        INDArray w = Nd4j.linspace(DataType.FLOAT, 1, 4, 1).reshape(2, 2);
        INDArray b = Nd4j.zeros(DataType.FLOAT, 2);
        INDArray x = Nd4j.createFromArray(new float[][] {{1, 0}});
        try (EagerSession session = new EagerSession()) {
            INDArray first = session.run(() -> product(session, LAYER, x, w, b));
            CustomOp untransposed = DynamicCustomOp.builder("xw_plus_b").build();
            INDArray second = session.run(() -> session.exec(LAYER, "xw_plus_b", () -> untransposed, Nd4j.createUninitialized(DataType.FLOAT, 1, 2),
                    x, w, b));
            assertEquals(first, second);
            assertEquals(Nd4j.createFromArray(new float[][] {{1, 3}}), first, "W read as [out, in]");
        }
    }
}
