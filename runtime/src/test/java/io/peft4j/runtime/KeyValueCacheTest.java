package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * A key/value cache filled and attended in a session (peft4j's kernels, where the process has them)
 * holds and computes what the same calls without a session (ND4J's views and ops) do, step after step,
 * and refuses what does not fit.
 */
class KeyValueCacheTest {
    private static final Object LAYER = new Object();
    private static final int HEADS = 4;
    private static final int WIDTH = 32;

    @Test
    void aSessionAppendsAndAttendsAsPlainCallsDo() {
        KeyValueCache inSession = new KeyValueCache(6);
        KeyValueCache plain = new KeyValueCache(6);
        INDArray prompt = Nd4j.randn(DataType.FLOAT, 3, WIDTH);
        INDArray promptValues = Nd4j.randn(DataType.FLOAT, 3, WIDTH);
        // A layer's outputs are the same arrays every step, with new values: as a decoder's projections are.
        INDArray key = Nd4j.create(DataType.FLOAT, 1, WIDTH);
        INDArray value = Nd4j.create(DataType.FLOAT, 1, WIDTH);
        INDArray query = Nd4j.create(DataType.FLOAT, 1, WIDTH);
        try (EagerSession session = new EagerSession()) {
            session.run(() -> {
                inSession.append(prompt, promptValues);
                return prompt;
            });
            plain.append(prompt, promptValues);
            for (int step = 0; step < 6; step++) {
                key.assign(Nd4j.randn(DataType.FLOAT, 1, WIDTH));
                value.assign(Nd4j.randn(DataType.FLOAT, 1, WIDTH));
                query.assign(Nd4j.randn(DataType.FLOAT, 1, WIDTH).muli(2));
                INDArray attended = session.run(() -> {
                    inSession.append(key, value);
                    return inSession.attendOne(LAYER, query, HEADS);
                });
                plain.append(key, value);
                INDArray expected = plain.attendOne(LAYER, query, HEADS);
                assertEquals(plain.length(), inSession.length());
                assertEquals(plain.keys(), inSession.keys(), "step " + step + ": cached keys");
                assertEquals(plain.values(), inSession.values(), "step " + step + ": cached values");
                assertTrue(expected.equalsWithEps(attended, 1e-5), "step " + step + ": " + attended + " instead of " + expected);
                assertTrue(expected.equalsWithEps(reference(plain.keys(), plain.values(), query), 1e-5), "step " + step + ": the definition");
            }
            assertThrows(IllegalStateException.class, () -> session.run(() -> {
                inSession.append(key, value);
                return key;
            }), "the seventh position after the prompt does not fit");
        }
        assertThrows(IllegalStateException.class, () -> plain.append(key, value));
        assertThrows(IllegalStateException.class, () -> new KeyValueCache(2).attendOne(LAYER, query, HEADS), "nothing cached yet");
    }

    @Test
    void aPromptsQueriesEachAttendUpToTheirOwnPositionInASessionAndWithout() {
        // Two positions in front (a prefix) and a prompt of five: query t sees the prefix and prompt rows 0..t.
        INDArray keys = Nd4j.randn(DataType.FLOAT, 7, WIDTH);
        INDArray values = Nd4j.randn(DataType.FLOAT, 7, WIDTH);
        INDArray queries = Nd4j.randn(DataType.FLOAT, 5, WIDTH).muli(2);
        KeyValueCache inSession = new KeyValueCache(3);
        KeyValueCache plain = new KeyValueCache(3);
        INDArray attended;
        try (EagerSession session = new EagerSession()) {
            attended = session.run(() -> {
                inSession.append(keys, values);
                return inSession.attendEach(LAYER, queries, HEADS);
            });
        }
        plain.append(keys, values);
        INDArray withoutSession = plain.attendEach(LAYER, queries, HEADS);
        for (int t = 0; t < 5; t++) {
            INDArray seen = keys.get(NDArrayIndex.interval(0, 3 + t), NDArrayIndex.all());
            INDArray expected = reference(seen, values.get(NDArrayIndex.interval(0, 3 + t), NDArrayIndex.all()), queries.getRow(t).reshape(1, WIDTH));
            assertTrue(expected.equalsWithEps(attended.getRow(t).reshape(1, WIDTH), 1e-5), "query " + t + " in a session: " + attended.getRow(t));
            assertTrue(expected.equalsWithEps(withoutSession.getRow(t).reshape(1, WIDTH), 1e-5), "query " + t + " without: " + withoutSession.getRow(t));
        }
        assertThrows(IllegalStateException.class, () -> new KeyValueCache(0).attendEach(LAYER, queries, HEADS), "nothing cached yet");
    }

    /** Per head: softmax(q · Kᵀ / √(d / heads)) · V. */
    private static INDArray reference(INDArray keys, INDArray values, INDArray query) {
        int size = WIDTH / HEADS;
        INDArray result = Nd4j.create(DataType.FLOAT, 1, WIDTH);
        for (int head = 0; head < HEADS; head++) {
            INDArray q = query.get(NDArrayIndex.all(), NDArrayIndex.interval(head * size, (head + 1) * size));
            INDArray k = keys.get(NDArrayIndex.all(), NDArrayIndex.interval(head * size, (head + 1) * size));
            INDArray v = values.get(NDArrayIndex.all(), NDArrayIndex.interval(head * size, (head + 1) * size));
            INDArray scores = q.mmul(k.transpose()).divi(Math.sqrt(size));
            INDArray weights = org.nd4j.linalg.ops.transforms.Transforms.softmax(scores, true);
            result.get(NDArrayIndex.all(), NDArrayIndex.interval(head * size, (head + 1) * size)).assign(weights.mmul(v));
        }
        return result;
    }
}
