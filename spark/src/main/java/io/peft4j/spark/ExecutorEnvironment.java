package io.peft4j.spark;

import io.peft4j.runtime.OpenBlasKernels;
import java.io.IOException;
import java.io.Serializable;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Optional;
import java.util.Set;
import org.nd4j.linalg.api.blas.Blas;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The environment variables an executor JVM's native libraries read once, when they load, as one
 * executor has them; collected on the executors before a training stage so that the driver can say
 * which {@code spark.executorEnv.*} settings would make the steps faster.
 *
 * <p>{@code scripts/peft4j-java} sets these for a JVM it starts; Spark starts executors itself, so
 * on a cluster only {@code spark.executorEnv.*} (or the nodes' environment) can. Without
 * {@code OMP_WAIT_POLICY=PASSIVE} and {@code OPENBLAS_THREAD_TIMEOUT=4}, OpenMP's and OpenBLAS's
 * workers spin between ops on the cores the next op wants: MiniLM's LoRA step took 459–502 ms
 * instead of 386–401 on the development machine (README, Speed). Without {@code OPENBLAS_CORETYPE}
 * on an AMD CPU with AVX-512, ND4J's OpenBLAS falls back to slower kernels ({@link OpenBlasKernels}).
 *
 * @param ompWaitPolicy         {@code OMP_WAIT_POLICY}, {@code null} when unset
 * @param openBlasThreadTimeout {@code OPENBLAS_THREAD_TIMEOUT}, {@code null} when unset
 * @param slowKernels           whether ND4J's BLAS is OpenBLAS and would pick slower kernels than the CPU supports
 */
record ExecutorEnvironment(String ompWaitPolicy, String openBlasThreadTimeout, boolean slowKernels) implements Serializable {
    static final String WAIT_POLICY = "OMP_WAIT_POLICY";
    static final String THREAD_TIMEOUT = "OPENBLAS_THREAD_TIMEOUT";

    /** This JVM's (an executor's) environment. */
    static ExecutorEnvironment ofThisJvm() {
        boolean openBlas = Nd4j.getEnvironment().isCPU() && Nd4j.factory().blas().getBlasVendor() == Blas.Vendor.OPENBLAS;
        String cpuinfo;
        try {
            cpuinfo = Files.readString(Path.of("/proc/cpuinfo"));
        } catch (IOException | SecurityException e) {
            cpuinfo = "";
        }
        boolean slow = openBlas && OpenBlasKernels.advice(cpuinfo, System.getenv(OpenBlasKernels.CORETYPE_VARIABLE)).isPresent();
        return new ExecutorEnvironment(System.getenv(WAIT_POLICY), System.getenv(THREAD_TIMEOUT), slow);
    }

    /**
     * One line for the driver naming the settings some executors lack, as {@code spark-submit}
     * options, or for {@code local} mode (the executors are the driver's JVM) as variables of this
     * JVM's environment; empty when every executor has them (any value the user set counts as a choice).
     */
    static Optional<String> advice(Collection<ExecutorEnvironment> executors, boolean local) {
        Set<String> settings = new LinkedHashSet<>();
        for (ExecutorEnvironment executor : executors) {
            if (executor.ompWaitPolicy() == null || executor.ompWaitPolicy().isBlank()) {
                settings.add(WAIT_POLICY + "=PASSIVE");
            }
            if (executor.openBlasThreadTimeout() == null || executor.openBlasThreadTimeout().isBlank()) {
                settings.add(THREAD_TIMEOUT + "=4");
            }
            if (executor.slowKernels()) {
                settings.add(OpenBlasKernels.CORETYPE_VARIABLE + "=SkylakeX");
            }
        }
        if (settings.isEmpty()) {
            return Optional.empty();
        }
        List<String> options = new ArrayList<>();
        settings.forEach(setting -> options.add(local ? setting : "--conf spark.executorEnv." + setting));
        String how = local ? "start this JVM with " + String.join(" ", options) + " in its environment, as scripts/peft4j-java does"
                : "start the application with " + String.join(" ", options);
        return Optional.of("[peft4j] the executors' native threads will spin between ops or use slower matrix kernels; " + how
                + " (native libraries read these once, when they load)");
    }
}
