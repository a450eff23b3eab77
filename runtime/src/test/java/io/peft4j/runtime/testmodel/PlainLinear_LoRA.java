package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;

/** What peft4j-processor generates for {@link PlainLinear}, as far as the runtime uses it. */
public final class PlainLinear_LoRA extends FieldWeightAccessor<PlainLinear> {
    public PlainLinear_LoRA() {
        super(PlainLinear.class, "weight", WeightLayout.IN_OUT);
    }
}
