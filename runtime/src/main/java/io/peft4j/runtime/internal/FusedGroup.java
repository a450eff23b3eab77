package io.peft4j.runtime.internal;

import java.util.Collections;
import java.util.EnumMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.nd4j.autodiff.functions.DifferentialFunction;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A group of a recording's calls that {@link RecordedStep} runs as one pass of peft4j's kernels at
 * one of them, {@link #anchor()}; the other members then run nothing ({@link ExactGelu},
 * {@link WrittenOutLayerNorm}, {@link ScaledDotProductAttention}, {@link AttentionGradient}, {@link ProductSum}).
 */
interface FusedGroup {
    /** The recorded calls, as value slots: what a group's finder needs of a recording. */
    interface Calls {
        int size();

        DifferentialFunction op(int call);

        /** The value slots a call reads, {@code -1} for a placeholder, parameter or constant. */
        int[] inputs(int call);

        /** The value slots a call writes. */
        int[] outputs(int call);

        /** The calls that read a slot, in order. */
        List<Integer> readers(int slot);

        /** Whether something besides the calls reads a slot (a loss, a gradient the updater takes, a kept output). */
        boolean readAfterwards(int slot);

        /** Input {@code k} of {@code call} as recorded (for its shape and type). */
        INDArray recordedInput(int call, int k);

        /** The integer arguments {@code call} was run with (a product's transpositions, a softmax's axis). */
        long[] integerArguments(int call);

        /** The floating-point arguments {@code call} was run with. */
        double[] floatArguments(int call);
    }

    /** The step's arrays as a group's kernel binds to them. */
    interface StepArrays {
        /** The buffer of a value slot. */
        INDArray slot(int slot);

        /** Input {@code k} of {@code call} as the replay passes it (a parameter, placeholder or constant where it has no slot). */
        INDArray input(int call, int k);
    }

    /** The call where the group's pass runs: its last, or its first when every value it reads is ready there. */
    int anchor();

    /** The group's calls, {@link #anchor()} among them. */
    Set<Integer> members();

    /** The value slots the group reads, which have to stay intact until {@link #anchor()}. */
    int[] inputs();

    /**
     * Slots the group's pass writes at {@link #anchor()} though their own calls come later (a group
     * anchored at its first call): their buffers are reserved from the anchor on.
     */
    default int[] writtenAtAnchor() {
        return new int[0];
    }

    /** The pass over the step's arrays, or {@code null} when {@code kernels} do not cover them. */
    Runnable kernel(ReplayKernels kernels, StepArrays arrays);

    /**
     * Of a group's {@code produced} values by role, those read outside the group, all after its last
     * call: the values its pass has to write; {@code null} when one is read earlier or by the step itself.
     */
    static <P extends Enum<P>> Map<P, Integer> written(Calls calls, Set<Integer> members, Map<P, Integer> produced, Class<P> roles) {
        int anchor = Collections.max(members);
        Map<P, Integer> written = new EnumMap<>(roles);
        for (Map.Entry<P, Integer> part : produced.entrySet()) {
            int slot = part.getValue();
            if (calls.readAfterwards(slot)) {
                return null;
            }
            for (int reader : calls.readers(slot)) {
                if (!members.contains(reader)) {
                    if (reader <= anchor) {
                        return null;
                    }
                    written.put(part.getKey(), slot);
                }
            }
        }
        return written;
    }
}
