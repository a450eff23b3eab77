package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;

/** What peft4j-processor generates for {@link SequenceLinear}, as far as the runtime uses it. */
public final class SequenceLinear_LoRA extends FieldWeightAccessor<SequenceLinear> {
    public SequenceLinear_LoRA() {
        super(SequenceLinear.class, "weight", WeightLayout.IN_OUT);
    }
}
