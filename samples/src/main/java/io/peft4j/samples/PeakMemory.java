package io.peft4j.samples;

import org.bytedeco.javacpp.Pointer;

/** Samples the process' resident memory (JavaCPP's reading of RSS, heap and off-heap together) while running. */
public final class PeakMemory implements AutoCloseable {

    private final Thread sampler;
    private volatile boolean running = true;
    private volatile long peak;

    public PeakMemory() {
        sampler = new Thread(() -> {
            while (running) {
                peak = Math.max(peak, Pointer.physicalBytes());
                try {
                    Thread.sleep(200);
                } catch (InterruptedException stop) {
                    return;
                }
            }
        }, "peft4j-peak-memory");
        sampler.setDaemon(true);
        sampler.start();
    }

    /** The highest resident size seen, in bytes. */
    public long peakBytes() {
        return Math.max(peak, Pointer.physicalBytes());
    }

    @Override
    public void close() {
        running = false;
        sampler.interrupt();
    }
}
