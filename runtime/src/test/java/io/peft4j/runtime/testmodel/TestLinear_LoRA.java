package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;

/** What peft4j-processor generates for {@link TestLinear}, as far as the runtime uses it. */
public final class TestLinear_LoRA extends FieldWeightAccessor<TestLinear> {
    public TestLinear_LoRA() {
        super(TestLinear.class, "weight", WeightLayout.IN_OUT);
    }
}
