package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.assertNotSame;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A replayed forward pass gives SameDiff's outputs bit for bit: for new inputs of the recorded shape,
 * for another shape (a recording of its own), after a parameter changes in place and after the graph
 * changes (recorded again); a graph with a random op is never replayed.
 */
class RecordedInferenceTest {
    private static final int SEQUENCE = 3;
    private static final int WIDTH = 4;

    @Test
    void replaysGiveSameDiffsOutputs() {
        SameDiff sd = graph(false);
        RecordedInference inference = RecordedInference.of(sd, "out");
        for (int call = 0; call < 4; call++) {
            INDArray x = input(call, call < 3 ? 5 : 2);
            assertIdentical(sd.output(Map.of("x", x), "out").get("out"), inference.output(Map.of("x", x)).get("out"), "call " + call);
        }
        assertEquals(1, inference.replayedCount(), "the first call runs in SameDiff, the second is recorded, the third replayed;"
                + " the fourth, of a shape seen once, runs in SameDiff");
        assertIdentical(sd.output(Map.of("x", input(9, 5)), "out").get("out"), inference.output(Map.of("x", input(9, 5))).get("out"), "again");
        assertEquals(2, inference.replayedCount());
    }

    @Test
    void readsParametersChangedInPlaceAndRecordsAgainWhenTheGraphChanges() {
        SameDiff sd = graph(false);
        RecordedInference inference = RecordedInference.of(sd, "out");
        INDArray x = input(1, 5);
        inference.output(Map.of("x", x));
        inference.output(Map.of("x", x));

        sd.getArrForVarName("w1").muli(2.0);
        assertIdentical(sd.output(Map.of("x", x), "out").get("out"), inference.output(Map.of("x", x)).get("out"), "after a change");
        sd.getVariable("w2").setArray(sd.getArrForVarName("w2").mul(3.0)); // SameDiff assigns into the same array
        assertIdentical(sd.output(Map.of("x", x), "out").get("out"), inference.output(Map.of("x", x)).get("out"), "after a change");
        assertEquals(2, inference.replayedCount());

        sd.math.abs(sd.getVariable("out")); // a new op: the graph may have been rewired
        assertIdentical(sd.output(Map.of("x", x), "out").get("out"), inference.output(Map.of("x", x)).get("out"), "after a change");
        assertEquals(2, inference.replayedCount(), "recorded again after the graph changed");
    }

    @Test
    void outputsAreCopies() {
        SameDiff sd = graph(false);
        RecordedInference inference = RecordedInference.of(sd, "out");
        inference.output(Map.of("x", input(1, 5)));
        inference.output(Map.of("x", input(1, 5)));
        INDArray first = inference.output(Map.of("x", input(1, 5))).get("out");
        INDArray kept = first.dup();
        INDArray second = inference.output(Map.of("x", input(2, 5))).get("out");
        assertNotSame(first, second);
        assertEquals(2, inference.replayedCount());
        assertIdentical(kept, first, "a later call does not overwrite an earlier result");
    }

    @Test
    void aGraphWithARandomOpIsNeverReplayed() {
        SameDiff sd = graph(true);
        RecordedInference inference = RecordedInference.of(sd, "out");
        for (int call = 0; call < 3; call++) {
            inference.output(Map.of("x", input(call, 5)));
        }
        assertEquals(0, inference.replayedCount());
    }

    @Test
    void aReshapeReadAfterItsInputsLastOtherReaderKeepsItsValues() {
        // replay makes the reshapes views of tanh's buffer; that buffer must not be reused while a view is
        // still to be read, though every op after the first reshape could take a buffer of its shape
        Nd4j.getRandom().setSeed(7);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, WIDTH);
        SDVariable root = sd.math.tanh(x);
        SDVariable flat = sd.reshape(root, -1);
        SDVariable later = sd.nn.sigmoid(x).mul(2.0).add(1.0);
        sd.reshape(flat, -1, WIDTH).mul(later).add(sd.math.exp(later)).rename("out");
        RecordedInference inference = RecordedInference.of(sd, "out");
        for (int call = 0; call < 4; call++) {
            Nd4j.getRandom().setSeed(call);
            INDArray input = Nd4j.rand(DataType.DOUBLE, 6, WIDTH).subi(0.5);
            assertIdentical(sd.output(Map.of("x", input), "out").get("out"), inference.output(Map.of("x", input)).get("out"), "call " + call);
        }
        assertEquals(2, inference.replayedCount());
    }

    @Test
    void namesAMissingOutput() {
        IllegalArgumentException error = assertThrows(IllegalArgumentException.class, () -> RecordedInference.of(graph(false), "logits"));
        assertEquals(true, error.getMessage().contains("'logits'"), error.getMessage());
    }

    /** Same shape, same values bit for bit (INDArray.equals allows a tolerance). */
    private static void assertIdentical(INDArray expected, INDArray actual, String what) {
        assertTrue(java.util.Arrays.equals(expected.shape(), actual.shape()), what);
        assertEquals(0.0, expected.sub(actual).amaxNumber().doubleValue(), 0.0, what);
    }

    private static INDArray input(int seed, int batch) {
        Nd4j.getRandom().setSeed(seed);
        return Nd4j.rand(DataType.DOUBLE, batch, SEQUENCE, WIDTH).subi(0.5);
    }

    /** {@code out = LayerNorm(gelu(x · w1)) ⊙ softmax(x · w2)} over {@code x [batch, sequence, d]}, optionally with a random mask. */
    private static SameDiff graph(boolean random) {
        Nd4j.getRandom().setSeed(3);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, SEQUENCE, WIDTH);
        SDVariable w1 = sd.var("w1", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5));
        SDVariable w2 = sd.var("w2", Nd4j.rand(DataType.DOUBLE, WIDTH, WIDTH).subi(0.5));
        SDVariable flat = sd.reshape(x, -1, WIDTH);
        SDVariable hidden = sd.nn.gelu(flat.mmul(w1));
        if (random) {
            hidden = hidden.mul(sd.random.bernoulli(0.9, DataType.DOUBLE, WIDTH));
        }
        SDVariable shaped = sd.reshape(hidden, -1, SEQUENCE, WIDTH);
        SDVariable centred = shaped.sub(shaped.mean(true, 2));
        SDVariable normalised = centred.div(sd.math.sqrt(centred.mul(centred).mean(true, 2).add(1e-5)));
        normalised.mul(sd.nn.softmax(sd.reshape(flat.mmul(w2), -1, SEQUENCE, WIDTH), 2)).rename("out");
        return sd;
    }
}
