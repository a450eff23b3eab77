package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;

/** What peft4j-processor generates for {@link EagerLinear}, as far as the runtime uses it. */
public final class EagerLinear_LoRA extends FieldWeightAccessor<EagerLinear> {
    public EagerLinear_LoRA() {
        super(EagerLinear.class, "weight", WeightLayout.OUT_IN);
    }
}
