package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.spi.WeightAccessor;

/** What peft4j-processor generates for {@link TestLinear} (the processor cannot run on the runtime's own tests). */
public final class TestLinear_LoRA implements WeightAccessor<TestLinear> {
    @Override
    public Class<TestLinear> layerType() {
        return TestLinear.class;
    }

    @Override
    public WeightLayout layout() {
        return WeightLayout.IN_OUT;
    }

    @Override
    public String weightName() {
        return "weight";
    }

    @Override
    public Object weight(TestLinear layer) {
        return layer.weight;
    }
}
