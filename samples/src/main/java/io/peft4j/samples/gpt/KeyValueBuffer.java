package io.peft4j.samples.gpt;

import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * One attention layer's keys and values for eager cached decoding of one sequence, in arrays
 * allocated once: {@code [capacity, d]} each, of which the first {@link #length()} rows are filled.
 *
 * <p>The capacity is set by the first {@link #append} (the prompt, with any prefix or virtual-token
 * positions in front) plus {@code room} positions for what follows, so a decoding step writes its one
 * new position in place instead of copying the whole cache, as the graph path's {@code concat} does.
 * The arrays live outside any workspace: they outlast the step that fills them.
 */
public final class KeyValueBuffer {
    private final long room;
    private INDArray keys;
    private INDArray values;
    private long length;

    /** A buffer that will hold the first append's positions and {@code room} more. */
    public KeyValueBuffer(long room) {
        this.room = room;
    }

    /** Appends {@code newKeys} and {@code newValues} {@code [m, d]}. */
    public void append(INDArray newKeys, INDArray newValues) {
        long count = newKeys.size(0);
        if (keys == null) {
            long[] shape = {count + room, newKeys.size(1)};
            try (MemoryWorkspace outside = Nd4j.getWorkspaceManager().scopeOutOfWorkspaces()) {
                keys = Nd4j.create(newKeys.dataType(), shape);
                values = Nd4j.create(newValues.dataType(), shape);
            }
        }
        if (length + count > keys.size(0)) {
            throw new IllegalStateException("the key/value cache holds " + keys.size(0) + " positions and is full: " + length
                    + " are cached and " + count + " more arrived");
        }
        positions(keys, length, length + count).assign(newKeys);
        positions(values, length, length + count).assign(newValues);
        length += count;
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

    private static INDArray positions(INDArray array, long from, long to) {
        return array.get(NDArrayIndex.interval(from, to), NDArrayIndex.all());
    }
}
