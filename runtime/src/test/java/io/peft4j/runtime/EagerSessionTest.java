package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertSame;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.DynamicCustomOp;
import org.nd4j.linalg.factory.Nd4j;

/** Reused op contexts give each call's own result, one context per layer and name, only while a session runs; outputs are reused pass to pass. */
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
    void callsAlternatingBetweenTwoSetsOfArraysEachComputeFromTheirOwn() {
        // A decoder reset between sequences alternates a prompt's [5, d] arrays and a step's [1, d] ones.
        INDArray[] prompt = {Nd4j.rand(DataType.FLOAT, 5, 300), Nd4j.rand(DataType.FLOAT, 5, 300)};
        INDArray[] step = {Nd4j.rand(DataType.FLOAT, 1, 300), Nd4j.rand(DataType.FLOAT, 1, 300)};
        INDArray[] third = {Nd4j.rand(DataType.FLOAT, 2, 300), Nd4j.rand(DataType.FLOAT, 2, 300)};
        try (EagerSession session = new EagerSession()) {
            for (int call = 0; call < 7; call++) {
                INDArray[] operands = call == 5 ? third : call % 2 == 0 ? prompt : step;
                operands[0].addi(1f); // new values in the same arrays
                INDArray expected = operands[0].add(operands[1]);
                INDArray actual = session.run(() -> EagerSession.sum(LAYER, "sum", operands[0], operands[1]));
                assertTrue(expected.equalsWithEps(actual, 0), "call " + call + ": " + actual + " instead of " + expected);
            }
        }
    }

    @Test
    void equalOwnersAreStillTwoLayers() {
        record Layer(String name) {
        }
        INDArray w = Nd4j.eye(2).castTo(DataType.FLOAT);
        INDArray b = Nd4j.zeros(DataType.FLOAT, 2);
        INDArray x = Nd4j.ones(DataType.FLOAT, 1, 2);
        try (EagerSession session = new EagerSession()) {
            session.run(() -> product(session, new Layer("same"), x, w, b));
            session.run(() -> product(session, new Layer("same"), x, w, b));
            assertEquals(2, session.reusedCount(), "a context per layer instance");
        }
    }

    @Test
    void callRunsTheOpTheWayTheThreadIsIn() {
        INDArray w = Nd4j.createFromArray(new float[][] {{1, 2}, {3, 4}});
        INDArray b = Nd4j.createFromArray(10f, 20f);
        INDArray x = Nd4j.createFromArray(new float[][] {{1, 1}});
        INDArray expected = Nd4j.createFromArray(new float[][] {{13, 27}});
        INDArray plainOutput = Nd4j.create(DataType.FLOAT, 1, 2);
        assertSame(plainOutput, EagerSession.call(LAYER, "xw_plus_b", () -> transposedProduct(x, w, b, plainOutput), plainOutput, x, w, b));
        assertEquals(expected, plainOutput, "no session: the op as built, with its own arrays");
        try (EagerSession session = new EagerSession()) {
            INDArray inSession = session.run(() -> {
                INDArray output = Nd4j.createUninitialized(DataType.FLOAT, 1, 2);
                return EagerSession.call(LAYER, "xw_plus_b", () -> transposedProduct(x, w, b, output), output, x, w, b);
            });
            assertEquals(expected, inSession);
            assertEquals(1, session.reusedCount(), "in a session the context is kept");
        }
    }

    private static DynamicCustomOp transposedProduct(INDArray x, INDArray byOutput, INDArray bias, INDArray output) {
        return DynamicCustomOp.builder("xw_plus_b").addInputs(x, byOutput, bias).addOutputs(output).addIntegerArguments(1L).build();
    }

    @Test
    void outputsAreReusedAcrossPassesButNeverTwiceInOnePass() {
        try (EagerSession session = new EagerSession()) {
            INDArray[][] seen = new INDArray[2][];
            for (int pass = 0; pass < 2; pass++) {
                int at = pass;
                session.run(() -> {
                    INDArray first = EagerSession.outputFor(LAYER, "y", DataType.FLOAT, 1, 4);
                    INDArray second = EagerSession.outputFor(LAYER, "y", DataType.FLOAT, 1, 4);
                    INDArray otherShape = EagerSession.outputFor(LAYER, "y", DataType.FLOAT, 2, 4);
                    seen[at] = new INDArray[] {first, second, otherShape};
                    return first.assign(at);
                });
            }
            assertNotSame(seen[0][0], seen[0][1], "a second request in one pass gets its own array");
            assertSame(seen[0][0], seen[1][0], "the next pass gets the same array again");
            assertSame(seen[0][1], seen[1][1]);
            assertArrayEquals(new long[] {2, 4}, seen[1][2].shape());
            assertFalse(seen[0][0].isAttached(), "kept outside the passes' reused memory");
            assertEquals(3, session.reusedCount());
        }
        assertNotSame(EagerSession.outputFor(LAYER, "y", DataType.FLOAT, 1, 4), EagerSession.outputFor(LAYER, "y", DataType.FLOAT, 1, 4),
                "without a session every request is a new array");
    }

    @Test
    void viewsOfSessionOutputsAreKeptButOtherArraysReshapedAnew() {
        INDArray foreign = Nd4j.ones(DataType.FLOAT, 1, 4);
        try (EagerSession session = new EagerSession()) {
            INDArray[][] seen = new INDArray[2][];
            for (int pass = 0; pass < 2; pass++) {
                int at = pass;
                session.run(() -> {
                    INDArray output = EagerSession.outputFor(LAYER, "y", DataType.FLOAT, 1, 4).assign(at);
                    INDArray flat = EagerSession.reshape(output, 4);
                    seen[at] = new INDArray[] {flat, EagerSession.reshape(flat, 2, 2), EagerSession.reshape(foreign, 4)};
                    return output;
                });
            }
            assertSame(seen[0][0], seen[1][0], "a view of an output is the same object every pass");
            assertSame(seen[0][1], seen[1][1], "and so is a view of that view");
            assertNotSame(seen[0][2], seen[1][2], "an array the session did not hand out is reshaped anew");
            assertEquals(Nd4j.valueArrayOf(new long[] {2, 2}, 1f), seen[1][1], "views show the output's current values");
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
