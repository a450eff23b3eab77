package io.peft4j.samples.gpt;

import org.bytedeco.javacpp.Pointer;

/**
 * JavaCPP (under ND4J) checks the process's resident size against
 * {@code org.bytedeco.javacpp.maxphysicalbytes} on native allocations, by reading {@code /proc}; an eager
 * decoding step makes a few hundred small allocations, and the check took a quarter of the step on the
 * development machine (BENCHMARKS.md). With the property at 0 there is no such check; JavaCPP's own
 * count of the bytes it allocated ({@code maxbytes}) still bounds native memory.
 *
 * <p>The property is read once, when JavaCPP loads: call this first in {@code main}, before anything
 * touches ND4J, or pass {@code -Dorg.bytedeco.javacpp.maxphysicalbytes=0} to the JVM. It replaces the
 * limit the samples' launch sets for training ({@code sample.jvm.memory} in the pom), which a
 * generating program, whose arrays are a few KB, does not need.
 */
public final class ResidentMemoryCheck {
    static final String PROPERTY = "org.bytedeco.javacpp.maxphysicalbytes";

    private ResidentMemoryCheck() {
    }

    /** Switches the check off; returns whether it is off (false if JavaCPP had loaded already). */
    public static boolean disable() {
        System.setProperty(PROPERTY, "0");
        return Pointer.maxPhysicalBytes() == 0;
    }
}
