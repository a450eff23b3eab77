package io.peft4j.runtime;

import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.nativeblas.NativeOpsHolder;

/**
 * How many threads ND4J's native ops and its BLAS use.
 *
 * <p>SameDiff executes a graph op by op from one Java thread. By default OpenMP's workers spin
 * between ops while they wait for the next one ({@code OMP_WAIT_POLICY=ACTIVE} behaviour), so when
 * the workers take every core they compete with that driving thread, and every core but one runs
 * slower than one core alone. With {@code OMP_WAIT_POLICY=PASSIVE} the workers sleep between ops and
 * every core helps (BENCHMARKS.md has the measurements). The default is therefore every core when the
 * process was started with a passive wait policy ({@code scripts/peft4j-java} sets it), and one core
 * fewer than the machine has otherwise, at least one. OpenMP reads the variable once, when ND4J
 * loads, so it has to be in the JVM's environment.
 *
 * <p>Precedence: {@link #set} wins; otherwise the system property {@value #PROPERTY}; otherwise, if
 * the process was started with {@code OMP_NUM_THREADS}, ND4J's own setting is left alone; otherwise
 * {@link #defaultCount()}. {@link SameDiffTrainer} applies it before training. Inference programs
 * call {@link #apply()} themselves. On a GPU backend the count only sizes the host-side pools.
 */
public final class ComputeThreads {
    /** System property with the number of native threads, e.g. {@code -Dpeft4j.threads=4}. */
    public static final String PROPERTY = "peft4j.threads";
    /** The environment variable that tells OpenMP's workers to sleep ({@code PASSIVE}) or spin between ops. */
    public static final String WAIT_POLICY_VARIABLE = "OMP_WAIT_POLICY";

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

    /** For this machine and this process's {@value #WAIT_POLICY_VARIABLE}: see {@link #defaultCount(int, String)}. */
    public static int defaultCount() {
        return defaultCount(Runtime.getRuntime().availableProcessors(), System.getenv(WAIT_POLICY_VARIABLE));
    }

    /**
     * Every core when {@code waitPolicy} is {@code PASSIVE} (OpenMP's workers sleep between ops);
     * otherwise ({@code null} when unset) one core fewer than {@code cores}, at least one.
     */
    public static int defaultCount(int cores, String waitPolicy) {
        boolean passive = waitPolicy != null && waitPolicy.trim().equalsIgnoreCase("passive");
        return passive ? Math.max(1, cores) : Math.max(1, cores - 1);
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
