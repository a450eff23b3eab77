package io.peft4j.runtime.internal.vector;

import java.nio.ByteBuffer;
import java.nio.ByteOrder;

/**
 * ND4J's {@code gather} along axis 0 of a table: {@code output[r, :] = table[indices[r], :]}, the
 * embedding lookup of an eager decoding step.
 *
 * <p>Shapes: {@code table [rows, width]} fp32 contiguous in C order, {@code indices [count]} INT32
 * contiguous, {@code output [count, width]} fp32 contiguous. Each row is one bulk copy of its bytes; a
 * libnd4j {@code pullRows} or {@code gather} call cost 15–40 µs around those few hundred bytes
 * (BENCHMARKS.md, change 32). An index outside the table throws, naming it.
 */
final class RowGatherKernel implements Runnable {
    private final FloatRegion table;
    private final ByteBuffer indices;
    private final int indexStart;
    private final FloatRegion output;
    private final int rows;
    private final int width;
    private final int count;

    RowGatherKernel(FloatRegion table, int rows, int width, ByteBuffer indices, int indexStart, int count, FloatRegion output) {
        if ((long) rows * width != table.length() || (long) count * width != output.length() || indexStart + (long) count * Integer.BYTES > indices.capacity()) {
            throw new IllegalArgumentException("gather of " + count + " rows of a [" + rows + ", " + width + "] table (" + table.length()
                    + " elements) into " + output.length() + " elements");
        }
        this.table = table;
        this.indices = indices.duplicate().order(ByteOrder.nativeOrder());
        this.indexStart = indexStart;
        this.output = output;
        this.rows = rows;
        this.width = width;
        this.count = count;
    }

    @Override
    public void run() {
        int rowBytes = width * Float.BYTES;
        for (int r = 0; r < count; r++) {
            int index = indices.getInt(indexStart + r * Integer.BYTES);
            if (index < 0 || index >= rows) {
                throw new IndexOutOfBoundsException("gather: index " + index + " (entry " + r + ") is outside a table of " + rows + " rows");
            }
            output.bytes().put(output.at(r * width), table.bytes(), table.at(index * width), rowBytes);
        }
    }
}
