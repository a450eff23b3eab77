package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class OpenBlasKernelsTest {
    private static final String ZEN4_FLAGS =
            "fpu vme sse sse2 avx avx2 fma avx512f avx512dq avx512ifma avx512cd avx512bw avx512vl avx512_bf16";

    private static String cpuinfo(String vendor, String flags) {
        return "processor\t: 0\nvendor_id\t: " + vendor + "\nmodel name\t: test cpu\nflags\t\t: " + flags + "\n\n"
                + "processor\t: 1\nvendor_id\t: " + vendor + "\nflags\t\t: " + flags + "\n";
    }

    @Test
    void advisesSkylakeXKernelsOnAnAmdCpuWithAvx512() {
        Optional<String> advice = OpenBlasKernels.advice(cpuinfo("AuthenticAMD", ZEN4_FLAGS), null);

        assertTrue(advice.isPresent());
        assertTrue(advice.get().contains("OPENBLAS_CORETYPE=SkylakeX"), advice.get());
        assertTrue(advice.get().contains("scripts/peft4j-java"), advice.get());
    }

    @Test
    void staysQuietWhenTheUserHasChosenKernels() {
        assertEquals(Optional.empty(), OpenBlasKernels.advice(cpuinfo("AuthenticAMD", ZEN4_FLAGS), "Haswell"));
        assertTrue(OpenBlasKernels.advice(cpuinfo("AuthenticAMD", ZEN4_FLAGS), " ").isPresent());
    }

    @Test
    void staysQuietOnAmdCpusWithoutAvx512() {
        assertEquals(Optional.empty(),
                OpenBlasKernels.advice(cpuinfo("AuthenticAMD", "fpu sse2 avx avx2 fma"), null));
        assertEquals(Optional.empty(),
                OpenBlasKernels.advice(cpuinfo("AuthenticAMD", "avx2 avx512f avx512cd"), null));
    }

    @Test
    void staysQuietOnIntelCpusWhichTheBundledOpenBlasRecognises() {
        assertEquals(Optional.empty(), OpenBlasKernels.advice(cpuinfo("GenuineIntel", ZEN4_FLAGS), null));
    }

    @Test
    void staysQuietWhenCpuinfoSaysNothing() {
        assertEquals(Optional.empty(), OpenBlasKernels.advice("", null));
    }
}
