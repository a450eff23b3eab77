package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;

import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.listeners.Operation;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A recording computes what only the placeholders' shapes determine once, when it is built: the
 * {@code shape_of}, {@code strided_slice} and {@code concat} that size a reshape for any batch, and a
 * {@code ones_as}. Replays of other values of those shapes give SameDiff's outputs bit for bit, also
 * when the folded value is read early and buffers of its shape are reused after it; a float constant
 * is not folded, so a value written into it in place is read.
 */
class ShapeFoldingTest {
    private static final int SEQUENCE = 6;
    private static final int WIDTH = 4;

    @Test
    void shapeArithmeticIsComputedOnceAndReplaysStayExact() {
        SameDiff sd = graph();
        Map<String, INDArray> first = Map.of("x", Nd4j.randn(DataType.FLOAT, 3, SEQUENCE, WIDTH));
        RecordedStep.Recorder recorder = new RecordedStep.Recorder(Operation.INFERENCE);
        sd.output(first, List.of(recorder), "out");
        RecordedStep step = RecordedStep.build(sd, recorder, first, Map.of(), List.of(), List.of("out"));
        assertNotNull(step, "the graph can be replayed");
        assertEquals(5, step.foldedCalls(), "shape_of, strided_slice, concat, ones_as and the integer product; "
                + step.callCount() + " calls in all");

        for (int round = 0; round < 3; round++) {
            Map<String, INDArray> batch = Map.of("x", Nd4j.randn(DataType.FLOAT, 3, SEQUENCE, WIDTH));
            INDArray expected = sd.output(batch, "out").get("out");
            assertArrayEquals(expected.data().asFloat(), step.output(batch).get("out").data().asFloat(), "round " + round + ": SameDiff's bits");
        }

        sd.getArrForVarName("scale").assign(Nd4j.createFromArray(0.5f, -2f, 3f, 1f));
        Map<String, INDArray> batch = Map.of("x", Nd4j.randn(DataType.FLOAT, 3, SEQUENCE, WIDTH));
        INDArray expected = sd.output(batch, "out").get("out");
        assertArrayEquals(expected.data().asFloat(), step.output(batch).get("out").data().asFloat(), "the float constant is read at every replay");
        assertFalse(step.accepts(Map.of("x", Nd4j.randn(DataType.FLOAT, 2, SEQUENCE, WIDTH))), "another batch size records anew");
    }

    /**
     * {@code out = reshape(reshape(3 (2x + 2) − x, [batch, 6·4]) · w, x's shape) · 2 scale}, with the flat
     * shape built from {@code shape_of(x)}, the ones from {@code ones_as(2x + 1)} (values of their shape
     * end before it and follow it), and {@code scale} a float constant {@code [4]}.
     */
    private static SameDiff graph() {
        Nd4j.getRandom().setSeed(29);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.FLOAT, -1, SEQUENCE, WIDTH);
        SDVariable shape = x.shape();
        SDVariable batch = shape.get(org.nd4j.autodiff.samediff.SDIndex.interval(0, 1));
        SDVariable flatWidth = sd.constant(Nd4j.createFromArray((long) SEQUENCE)).mul(WIDTH);
        SDVariable doubled = x.mul(2f).add(1f);
        SDVariable shifted = doubled.add(sd.onesLike(doubled)).mul(3f).sub(x);
        SDVariable flat = sd.reshape(shifted, sd.concat(0, batch, flatWidth));
        SDVariable w = sd.var("w", Nd4j.randn(DataType.FLOAT, SEQUENCE * WIDTH, SEQUENCE * WIDTH).muli(0.2));
        SDVariable mixed = sd.reshape(flat.mmul(w), shape);
        mixed.mul(sd.constant("scale", Nd4j.createFromArray(1f, 2f, 3f, 4f)).mul(2f)).rename("out");
        return sd;
    }
}
