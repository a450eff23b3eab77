package io.peft4j.runtime;

import io.peft4j.runtime.internal.ReplayKernels;
import java.util.function.Supplier;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.CustomOp;
import org.nd4j.linalg.api.ops.impl.transforms.custom.DotProductAttention;
import org.nd4j.linalg.api.ops.impl.transforms.custom.SoftMax;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * One attention layer's keys and values for eager cached decoding of one sequence, in arrays
 * allocated once: {@code [capacity, d]} each, of which the first {@link #length()} rows are filled.
 *
 * <p>The capacity is set by the first {@link #append} (the prompt, with any prefix or virtual-token
 * positions in front) plus {@code room} positions for what follows ({@link #clear} keeps it for the
 * next sequence where that fits), so a decoding step writes its
 * new position in place instead of copying the whole cache, as a graph's {@code concat} does. The
 * arrays live outside any workspace: they outlast the step that fills them.
 *
 * <p>In an {@link EagerSession} with peft4j's kernels ({@link SameDiffTrainer#VECTOR_KERNELS}), a
 * step's append and its one query's attention ({@link #attendOne}) run in kernels bound to the cache
 * once per sequence: no view of the cache per step. A prompt's queries ({@link #attendEach}) each run
 * that kernel over their own prefix of the cache. Views cost ND4J a native shape buffer each, and
 * the eight a layer made per step were a third of what a decoding step allocated (BENCHMARKS.md,
 * change 22). Elsewhere (other backends, plain calls) both are ND4J's views and ops.
 */
public final class KeyValueCache {
    private final long room;
    private INDArray keys;
    private INDArray values;
    private long length;
    // Kernels of the current session, bound to the arrays they were made for.
    private ReplayKernels.CacheKernel keyWriter;
    private ReplayKernels.CacheKernel valueWriter;
    private INDArray writtenKeys;
    private INDArray writtenValues;
    private ReplayKernels.CacheKernel attention;
    private INDArray attendedQuery;
    private INDArray attendedOutput;
    private ReplayKernels.CacheKernel[] eachAttention;
    private INDArray eachQueries;
    private INDArray eachAttended;

    /** A cache that will hold the first append's positions and {@code room} more. */
    public KeyValueCache(long room) {
        if (room < 0) {
            throw new IllegalArgumentException("room for " + room + " positions: give 0 or more");
        }
        this.room = room;
    }

    /** Appends {@code newKeys} and {@code newValues} {@code [m, d]}. */
    public void append(INDArray newKeys, INDArray newValues) {
        long count = newKeys.size(0);
        if (keys != null && length == 0 && (count + room > keys.size(0) || keys.size(1) != newKeys.size(1)
                || keys.dataType() != newKeys.dataType())) {
            keys = null; // a cleared cache whose arrays do not fit the new sequence's first append
        }
        if (keys == null) {
            long[] shape = {count + room, newKeys.size(1)};
            try (MemoryWorkspace outside = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
                keys = Nd4j.create(newKeys.dataType(), shape);
                values = Nd4j.create(newValues.dataType(), shape);
            }
            // kernels bound to earlier arrays are bound again at their next call
            writtenKeys = null;
            writtenValues = null;
            attendedQuery = null;
            eachQueries = null;
        }
        if (length + count > keys.size(0)) {
            throw new IllegalStateException("the key/value cache holds " + keys.size(0) + " positions and is full: " + length
                    + " are cached and " + count + " more arrived");
        }
        if (!writeByKernels(newKeys, newValues)) {
            positions(keys, length, length + count).assign(newKeys);
            positions(values, length, length + count).assign(newValues);
        }
        length += count;
    }

    private boolean writeByKernels(INDArray newKeys, INDArray newValues) {
        ReplayKernels kernels = EagerSession.currentKernels();
        if (kernels == ReplayKernels.NONE) {
            return false;
        }
        if (newKeys != writtenKeys || newValues != writtenValues) {
            writtenKeys = newKeys;
            writtenValues = newValues;
            keyWriter = kernels.cacheWriter(newKeys, keys);
            valueWriter = kernels.cacheWriter(newValues, values);
        }
        if (keyWriter == null || valueWriter == null) {
            return false;
        }
        keyWriter.run((int) length);
        valueWriter.run((int) length);
        return true;
    }

    /**
     * One query {@code [1, d]} over every cached position, {@code heads} heads splitting the features:
     * per head {@code softmax(q · Kᵀ / √(d / heads)) · V}, returned as {@code [1, d]} (an
     * {@link EagerSession#outputFor} array of {@code owner}). A single query needs no causal mask.
     * Without peft4j's kernels it is ND4J's fused {@code dot_product_attention} (heads as its batch,
     * {@code [heads, d/heads, positions]}), one op instead of three.
     */
    public INDArray attendOne(Object owner, INDArray query, int heads) {
        if (length == 0) {
            throw new IllegalStateException("nothing is cached yet: append the prompt's keys and values first");
        }
        long size = keys.size(1);
        ReplayKernels kernels = EagerSession.currentKernels();
        if (kernels != ReplayKernels.NONE) {
            INDArray attended = EagerSession.outputFor(owner, "attended", query.dataType(), 1, size);
            if (query != attendedQuery || attended != attendedOutput) {
                attendedQuery = query;
                attendedOutput = attended;
                attention = kernels.cacheAttention(query, keys, values, attended, heads, true);
            }
            if (attention != null) {
                attention.run((int) length);
                return attended;
            }
        }
        INDArray queries = EagerSession.reshape(query, heads, size / heads, 1);
        INDArray byHeadKeys = byHeadAndFeature(keys(), heads);
        INDArray byHeadValues = byHeadAndFeature(values(), heads);
        INDArray attended = EagerSession.outputFor(owner, "attended by head", query.dataType(), heads, size / heads, 1);
        Supplier<CustomOp> op = () -> {
            DotProductAttention product = new DotProductAttention(queries, byHeadKeys, byHeadValues, null, true, false);
            product.addOutputArgument(attended);
            return product;
        };
        EagerSession.call(owner, "dot_product_attention", op, attended, queries, byHeadKeys, byHeadValues);
        return EagerSession.reshape(attended, 1, size);
    }

    /**
     * The queries {@code [T, d]} of the last {@code T} cached positions (a prompt just appended), each
     * over the cached positions up to and including its own, {@code heads} heads splitting the
     * features: per head {@code softmax(q · Kᵀ / √(d / heads) + causal mask) · V}, returned as
     * {@code [T, d]} (an {@link EagerSession#outputFor} array of {@code owner}). One query is
     * {@link #attendOne}.
     *
     * <p>With peft4j's kernels each query runs {@link #attendOne}'s kernel over its own prefix of the
     * cache, so a prompt's positions get the arithmetic its tokens would get fed one by one, in place
     * of a dozen libnd4j calls a layer for the masked product, softmax and product. Without them it is
     * those ops.
     */
    public INDArray attendEach(Object owner, INDArray queries, int heads) {
        long count = queries.size(0);
        if (count > length) {
            throw new IllegalStateException(count + " queries but " + length + " cached positions: append the queries' keys and values first");
        }
        if (count == 1) {
            return attendOne(owner, queries, heads);
        }
        long size = keys.size(1);
        INDArray attended = EagerSession.outputFor(owner, "attended rows", queries.dataType(), count, size);
        ReplayKernels kernels = EagerSession.currentKernels();
        if (kernels != ReplayKernels.NONE && attendEachByKernels(kernels, queries, attended, heads)) {
            return attended;
        }
        long perHead = size / heads;
        INDArray byHeadQueries = queries.reshape(count, heads, perHead).permute(1, 0, 2);
        INDArray byHeadKeys = keys().reshape(length, heads, perHead).permute(1, 0, 2);
        INDArray byHeadValues = values().reshape(length, heads, perHead).permute(1, 0, 2);
        INDArray scores = Nd4j.matmul(byHeadQueries, byHeadKeys, null, false, true, false).divi(Math.sqrt((double) perHead));
        scores.addi(causalMask(count, length).broadcast(scores.shape()));
        INDArray weights = Nd4j.exec((CustomOp) new SoftMax(scores, scores, 2))[0];
        INDArray byHead = Nd4j.matmul(weights, byHeadValues, null, false, false, false);
        return attended.assign(byHead.permute(1, 0, 2).reshape(count, size));
    }

    private boolean attendEachByKernels(ReplayKernels kernels, INDArray queries, INDArray attended, int heads) {
        int count = (int) queries.size(0);
        // a decoder reset for its next sequence passes the same session arrays for a prompt of the same length
        if (queries != eachQueries || attended != eachAttended) {
            eachQueries = queries;
            eachAttended = attended;
            eachAttention = new ReplayKernels.CacheKernel[count];
            for (int t = 0; t < count && eachAttention != null; t++) {
                INDArray query = queries.get(NDArrayIndex.interval(t, t + 1), NDArrayIndex.all());
                INDArray output = attended.get(NDArrayIndex.interval(t, t + 1), NDArrayIndex.all());
                eachAttention[t] = kernels.cacheAttention(query, keys, values, output, heads, true);
                if (eachAttention[t] == null) {
                    eachAttention = null;
                }
            }
        }
        if (eachAttention == null) {
            return false;
        }
        ReplayKernels.CacheKernel[] each = eachAttention;
        for (int t = 0; t < count; t++) {
            each[t].run((int) (length - count + t + 1));
        }
        return true;
    }

    /** {@code [1, queries, keys]}: 0 where a query (the last {@code queries} of {@code keys} positions) sees a key, else -1e9. */
    private static INDArray causalMask(long queries, long keys) {
        float[][] mask = new float[(int) queries][(int) keys];
        for (int i = 0; i < queries; i++) {
            for (int j = 0; j < keys; j++) {
                mask[i][j] = j <= i + keys - queries ? 0f : -1e9f;
            }
        }
        return Nd4j.createFromArray(mask).reshape(1, queries, keys);
    }

    /**
     * Forgets the cached positions, for the next sequence, and keeps the arrays (and the kernels bound
     * to them in a session): the next first append reuses them if it and the room fit, else allocates
     * new ones: allocating and zeroing them and binding their kernels again is part of what makes a
     * new sequence's first two passes slow (BENCHMARKS.md, change 32).
     */
    public void clear() {
        length = 0;
    }

    /** Whether nothing was appended yet. */
    public boolean isEmpty() {
        return length == 0;
    }

    /** Cached positions, prefixes and virtual tokens included. */
    public long length() {
        return length;
    }

    /** The cached keys {@code [length, d]} (a view). */
    public INDArray keys() {
        return positions(keys, 0, length);
    }

    /** The cached values {@code [length, d]} (a view). */
    public INDArray values() {
        return positions(values, 0, length);
    }

    /** {@code [P, d] → [heads, d/heads, P]}. */
    private static INDArray byHeadAndFeature(INDArray rows, int heads) {
        return rows.reshape(rows.size(0), heads, rows.size(1) / heads).permute(1, 2, 0);
    }

    private static INDArray positions(INDArray array, long from, long to) {
        return array.get(NDArrayIndex.interval(from, to), NDArrayIndex.all());
    }
}
