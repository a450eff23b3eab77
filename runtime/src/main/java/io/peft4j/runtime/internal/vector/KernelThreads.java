package io.peft4j.runtime.internal.vector;

import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicInteger;
import java.util.concurrent.atomic.AtomicReference;
import java.util.concurrent.locks.LockSupport;

/**
 * Splits a kernel's index range over the calling thread and a few parked daemon workers.
 *
 * <p>The caller always works too and takes any chunk no worker has claimed yet, so a worker that
 * wakes late costs nothing but its share: at worst the kernel runs as if single-threaded. Workers
 * park between kernels rather than spin, so they do not compete with libnd4j's OpenMP threads for
 * the cores. A second thread calling while a split is in progress (two models trained in parallel)
 * runs its kernel alone rather than wait.
 */
final class KernelThreads {
    /** Below this much work (elements × relative cost) waking a worker costs more than it saves. */
    static final long MIN_PARALLEL_WORK = 200_000;
    private static final int CHUNKS_PER_THREAD = 4;
    private static final int SPINS_BEFORE_PARKING = 2_000;

    /** The part of the range {@code [from, to)} one thread computes. */
    interface Body {
        void run(int from, int to);
    }

    private static final KernelThreads SHARED = new KernelThreads(Math.min(Runtime.getRuntime().availableProcessors(), 16));

    private final int threads;
    private final AtomicBoolean busy = new AtomicBoolean();
    private final AtomicReference<Job> current = new AtomicReference<>();
    private final Thread[] workers;

    private KernelThreads(int threads) {
        this.threads = Math.max(1, threads);
        this.workers = new Thread[this.threads - 1];
        for (int i = 0; i < workers.length; i++) {
            workers[i] = new Thread(this::work, "peft4j-kernel-" + (i + 1));
            workers[i].setDaemon(true);
            workers[i].start();
        }
    }

    static KernelThreads shared() {
        return SHARED;
    }

    /** The calling thread and the workers. */
    int threads() {
        return threads;
    }

    /**
     * Runs {@code body} over {@code [0, count)}, in chunks whose bounds are multiples of {@code grain}
     * (except the end), on several threads when {@code work} is large enough.
     */
    void forRange(int count, int grain, long work, Body body) {
        int chunks = (int) Math.min((long) threads * CHUNKS_PER_THREAD, count / Math.max(grain, 1));
        if (threads == 1 || work < MIN_PARALLEL_WORK || chunks < 2 || !busy.compareAndSet(false, true)) {
            body.run(0, count);
            return;
        }
        try {
            Job job = new Job(body, count, grain, chunks, Thread.currentThread());
            current.set(job);
            for (Thread worker : workers) {
                LockSupport.unpark(worker);
            }
            job.runChunks();
            current.set(null);
            job.awaitDone();
        } finally {
            busy.set(false);
        }
    }

    private void work() {
        Job last = null;
        while (true) {
            Job job = current.get();
            if (job != null && job != last) {
                last = job;
                job.runChunks();
            } else {
                LockSupport.park(this);
            }
        }
    }

    /** One split kernel: chunks claimed in order by whichever thread asks next. */
    private static final class Job {
        private final Body body;
        private final int count;
        private final int chunkSize;
        private final int chunks;
        private final Thread caller;
        private final AtomicInteger next = new AtomicInteger();
        private final AtomicInteger done = new AtomicInteger();
        private volatile Throwable failure;

        Job(Body body, int count, int grain, int chunks, Thread caller) {
            this.body = body;
            this.count = count;
            int size = (count + chunks - 1) / chunks;
            this.chunkSize = (size + grain - 1) / grain * grain;
            this.chunks = (count + chunkSize - 1) / chunkSize;
            this.caller = caller;
        }

        void runChunks() {
            int chunk;
            while ((chunk = next.getAndIncrement()) < chunks) {
                int from = chunk * chunkSize;
                try {
                    body.run(from, Math.min(count, from + chunkSize));
                } catch (Throwable t) {
                    failure = t;
                }
                if (done.incrementAndGet() == chunks) {
                    LockSupport.unpark(caller);
                }
            }
        }

        void awaitDone() {
            for (int spins = 0; done.get() < chunks; spins++) {
                if (spins < SPINS_BEFORE_PARKING) {
                    Thread.onSpinWait();
                } else {
                    LockSupport.park(this);
                }
            }
            Throwable t = failure;
            if (t instanceof RuntimeException runtime) {
                throw runtime;
            }
            if (t instanceof Error error) {
                throw error;
            }
        }
    }
}
