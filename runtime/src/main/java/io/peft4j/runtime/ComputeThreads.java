package io.peft4j.runtime;

import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.nativeblas.NativeOpsHolder;

/**
 * How many threads ND4J's native ops and its BLAS use.
 *
 * <p>SameDiff executes a graph op by op from one Java thread, and between ops ND4J's OpenMP and
 * OpenBLAS workers spin while they wait for work. When the workers take every core, they compete
 * with that driving thread. On the 2-core development machine a LoRA training step of the
 * benchmark transformer took about 410 ms with one native thread and 610 ms with two (see
 * BENCHMARKS.md). The default is therefore one core fewer than the machine has, at least one. This
 * rule was measured only on 2 cores; on larger machines, measure and set the count.
 *
 * <p>Precedence: {@link #set} wins; otherwise the system property {@value #PROPERTY}; otherwise, if
 * the process was started with {@code OMP_NUM_THREADS}, ND4J's own setting is left alone; otherwise
 * {@link #defaultCount()}. {@link SameDiffTrainer} applies it before training. Inference programs
 * call {@link #apply()} themselves.
 */
public final class ComputeThreads {
    /** System property with the number of native threads, e.g. {@code -Dpeft4j.threads=4}. */
    public static final String PROPERTY = "peft4j.threads";

    private static volatile int chosen;

    private ComputeThreads() {
    }

    /** Uses {@code threads} native threads from now on. */
    public static void set(int threads) {
        if (threads < 1) {
            throw new IllegalArgumentException("The number of compute threads must be at least 1, got " + threads);
        }
        chosen = threads;
        configure(threads);
    }

    /**
     * Applies the configured count (see the class comment); returns the count in effect. Cheap to
     * call again.
     */
    public static int apply() {
        int threads = chosen > 0 ? chosen : fromProperty();
        if (threads == 0 && System.getenv("OMP_NUM_THREADS") != null) {
            return current();
        }
        if (threads == 0) {
            threads = defaultCount();
        }
        configure(threads);
        return threads;
    }

    /** One core fewer than the machine has, at least one. */
    public static int defaultCount() {
        return Math.max(1, Runtime.getRuntime().availableProcessors() - 1);
    }

    private static int fromProperty() {
        String value = System.getProperty(PROPERTY);
        if (value == null || value.isBlank()) {
            return 0;
        }
        try {
            int threads = Integer.parseInt(value.trim());
            if (threads >= 1) {
                return threads;
            }
        } catch (NumberFormatException e) {
            // reported below
        }
        throw new PeftException("-D" + PROPERTY + "=" + value + " is not a thread count: give a whole number of at least 1");
    }

    /** The OpenMP thread count of ND4J's native ops now. */
    public static int current() {
        Nd4j.factory();
        return NativeOpsHolder.getInstance().getDeviceNativeOps().ompGetMaxThreads();
    }

    // ND4J's Environment.setMaxThreads does not reach the native side in 1.0.0-M2.1; OpenMP's count does.
    // The BLAS call comes first because it initialises the ND4J backend, which NativeOpsHolder needs.
    private static void configure(int threads) {
        Nd4j.factory().blas().setMaxThreads(threads);
        NativeOpsHolder.getInstance().getDeviceNativeOps().setOmpNumThreads(threads);
    }
}
