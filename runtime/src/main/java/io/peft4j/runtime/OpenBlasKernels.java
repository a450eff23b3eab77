package io.peft4j.runtime;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Optional;
import java.util.concurrent.atomic.AtomicBoolean;
import org.nd4j.linalg.api.blas.Blas;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Warns when ND4J's OpenBLAS runs slower kernels than the CPU supports.
 *
 * <p>ND4J 1.0.0-M2.1 bundles OpenBLAS 0.3.19, which predates AMD's AVX-512 CPUs (Zen 4 and Zen 5)
 * and picks slower kernels on them. On one core of the development machine, a Zen 5 EPYC, a
 * 2048 × 2048 × 2048 fp32 GEMM ran at 52 GFLOP/s with the kernels 0.3.19 detects there (its SSE
 * "Barcelona" fallback), at 126 GFLOP/s with {@code OPENBLAS_CORETYPE=Haswell} (AVX2) and at
 * 234 GFLOP/s with {@code OPENBLAS_CORETYPE=SkylakeX} (AVX-512); see BENCHMARKS.md. OpenBLAS reads
 * that variable once, when it is loaded, so only the JVM's environment can set it:
 * {@code scripts/peft4j-java} does, where it is unset. This class can only tell the user;
 * {@link SameDiffTrainer} calls {@link #warnIfSlow()} before training. A value the user has set is
 * taken as a choice and not second-guessed.
 */
public final class OpenBlasKernels {
    /** The environment variable OpenBLAS reads to choose its kernels. */
    public static final String CORETYPE_VARIABLE = "OPENBLAS_CORETYPE";

    private static final System.Logger LOG = System.getLogger(OpenBlasKernels.class.getName());
    private static final AtomicBoolean CHECKED = new AtomicBoolean();

    private OpenBlasKernels() {
    }

    /**
     * Logs {@link #advice} once per JVM, if there is any and ND4J's BLAS is OpenBLAS. Reads
     * {@code /proc/cpuinfo}; does nothing where it cannot be read.
     */
    public static void warnIfSlow() {
        if (!CHECKED.compareAndSet(false, true) || Nd4j.factory().blas().getBlasVendor() != Blas.Vendor.OPENBLAS) {
            return;
        }
        String cpuinfo;
        try {
            cpuinfo = Files.readString(Path.of("/proc/cpuinfo"));
        } catch (IOException | SecurityException e) {
            return;
        }
        advice(cpuinfo, System.getenv(CORETYPE_VARIABLE)).ifPresent(text -> LOG.log(System.Logger.Level.WARNING, text));
    }

    /**
     * What to do about the kernels, given the text of {@code /proc/cpuinfo} and the value of
     * {@value #CORETYPE_VARIABLE} ({@code null} when unset): empty when nothing is to be gained or
     * the user has already chosen.
     */
    public static Optional<String> advice(String cpuinfo, String coretype) {
        if (coretype != null && !coretype.isBlank()) {
            return Optional.empty();
        }
        if (!firstValue(cpuinfo, "vendor_id").equals("AuthenticAMD")) {
            return Optional.empty();
        }
        String flags = " " + firstValue(cpuinfo, "flags") + " ";
        for (String flag : new String[] {"avx512f", "avx512bw", "avx512dq", "avx512vl"}) {
            if (!flags.contains(" " + flag + " ")) {
                return Optional.empty();
            }
        }
        return Optional.of("This AMD CPU has AVX-512, but the OpenBLAS 0.3.19 bundled with ND4J does not know it and"
                + " falls back to AVX2 or older kernels, at half the matrix-product speed or less. Start the JVM with "
                + CORETYPE_VARIABLE + "=SkylakeX in its environment (scripts/peft4j-java does this for you), or set "
                + CORETYPE_VARIABLE + " to the kernels you want to silence this warning.");
    }

    private static String firstValue(String cpuinfo, String key) {
        for (String line : cpuinfo.split("\n")) {
            int colon = line.indexOf(':');
            if (colon > 0 && line.substring(0, colon).trim().equals(key)) {
                return line.substring(colon + 1).trim();
            }
        }
        return "";
    }
}
