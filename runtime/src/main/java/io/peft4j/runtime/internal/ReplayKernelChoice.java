package io.peft4j.runtime.internal;

import org.nd4j.linalg.factory.Nd4j;

/**
 * Which {@link ReplayKernels} this process uses: the JVM's modules and ND4J's backend are looked at
 * once (they do not change), the off switch at every call.
 */
final class ReplayKernelChoice {
    private static final String MISSING = missing();
    private static final ReplayKernels VECTOR = MISSING == null ? load() : ReplayKernels.NONE;

    private ReplayKernelChoice() {
    }

    static ReplayKernels kernels() {
        return switchedOff() ? ReplayKernels.NONE : VECTOR;
    }

    static String reason() {
        return switchedOff() ? "peft4j's vector kernels are off (-D" + ReplayKernels.PROPERTY + "=false)" : MISSING;
    }

    private static boolean switchedOff() {
        return "false".equalsIgnoreCase(System.getProperty(ReplayKernels.PROPERTY));
    }

    private static String missing() {
        if (!Nd4j.getEnvironment().isCPU()) {
            return "peft4j's vector kernels run on ND4J's CPU backend only";
        }
        if (ModuleLayer.boot().findModule(ReplayKernels.MODULE).isEmpty()) {
            return "replayed steps use libnd4j's elementwise kernels; start the JVM with --add-modules " + ReplayKernels.MODULE
                    + " for peft4j's faster ones";
        }
        return null;
    }

    private static ReplayKernels load() {
        try {
            return (ReplayKernels) Class.forName("io.peft4j.runtime.internal.vector.VectorKernels").getDeclaredConstructor().newInstance();
        } catch (ReflectiveOperationException | LinkageError e) {
            throw new IllegalStateException("peft4j's vector kernels could not be loaded although " + ReplayKernels.MODULE
                    + " is in the JVM's boot layer", e);
        }
    }
}
