package io.peft4j.runtime.bottleneck;

/**
 * A read-only view of one adapter's bottleneck module after one layer.
 *
 * @param path       the adapted layer's field path
 * @param hidden     d, the width of the layer's output (0 until the graph is built)
 * @param bottleneck b (0 until the graph is built)
 * @param activation the non-linearity
 */
public record BottleneckLayer(String path, long hidden, int bottleneck, String activation) {

    /** {@code 2·d·b + b + d}. */
    public long parameterCount() {
        return 2 * hidden * bottleneck + bottleneck + hidden;
    }
}
