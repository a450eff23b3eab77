package io.peft4j.runtime.bottleneck;

import io.peft4j.annotations.Adapter;
import io.peft4j.runtime.PeftException;
import java.util.Locale;
import java.util.Set;

/**
 * The validated settings of one bottleneck adapter: bottleneck size (explicit, or the hidden size
 * divided by the reduction factor) and activation. Checked again here because annotated classes can be
 * compiled without the processor, and because settings also come from saved configs.
 *
 * @param preset          the AdapterHub preset it came from ({@code PFEIFFER}, {@code HOULSBY})
 * @param reductionFactor {@code b = d / reductionFactor} unless {@code size} is given
 * @param size            an explicit bottleneck size, or 0
 * @param activation      {@code relu}, {@code gelu}, {@code swish}, {@code silu} or {@code tanh}
 */
public record BottleneckSettings(String preset, int reductionFactor, int size, String activation) {

    /** The activations a bottleneck adapter may use. */
    public static final Set<String> ACTIVATIONS = Set.of("relu", "gelu", "swish", "silu", "tanh");

    public static BottleneckSettings of(Adapter annotation, String where) {
        if (annotation.reductionFactor() <= 0) {
            throw new PeftException("@Adapter(reductionFactor = " + annotation.reductionFactor() + ") on " + where
                    + ": the reduction factor must be positive");
        }
        if (annotation.size() < 0) {
            throw new PeftException("@Adapter(size = " + annotation.size() + ") on " + where + ": size must be positive, or 0 for "
                    + "hidden size / reductionFactor");
        }
        String activation = (annotation.activation().isEmpty() ? annotation.preset().activation() : annotation.activation())
                .toLowerCase(Locale.ROOT);
        if (!ACTIVATIONS.contains(activation)) {
            throw new PeftException("@Adapter(activation = \"" + annotation.activation() + "\") on " + where
                    + ": unknown activation; use one of " + ACTIVATIONS);
        }
        return new BottleneckSettings(annotation.preset().name(), annotation.reductionFactor(), annotation.size(), activation);
    }

    /** The bottleneck size for a layer whose output has {@code hidden} features. */
    public int bottleneck(long hidden) {
        return size > 0 ? size : (int) Math.max(1, hidden / reductionFactor);
    }
}
