package io.peft4j.runtime.internal.vector;

import io.peft4j.runtime.internal.ReplayKernels;

/**
 * Copies rows {@code [m, d]} into a key/value cache {@code [capacity, d]} from a given row on, both
 * contiguous fp32 on the host: one bulk copy, where libnd4j needs a view of the target rows (a native
 * shape buffer) and an {@code assign} for each append.
 */
final class CacheWriterKernel implements ReplayKernels.CacheKernel {
    private final FloatRegion rows;
    private final FloatRegion cache;
    private final int width;

    CacheWriterKernel(FloatRegion rows, FloatRegion cache, int width) {
        if (width < 1 || rows.length() % width != 0 || cache.length() % width != 0) {
            throw new IllegalArgumentException("cache rows of " + width + ": rows of " + rows.length() + " elements, cache of " + cache.length());
        }
        this.rows = rows;
        this.cache = cache;
        this.width = width;
    }

    @Override
    public void run(int firstRow) {
        if (firstRow < 0 || (long) firstRow * width + rows.length() > cache.length()) {
            throw new IllegalArgumentException(rows.length() / width + " rows from row " + firstRow + " do not fit a cache of "
                    + cache.length() / width + " rows");
        }
        cache.bytes().put(cache.at(firstRow * width), rows.bytes(), rows.start(), rows.length() * Float.BYTES);
    }
}
