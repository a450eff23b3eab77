package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.spi.WeightAccessor;

/** What peft4j-processor generates for {@link SequenceLinear}. */
public final class SequenceLinear_LoRA implements WeightAccessor<SequenceLinear> {
    @Override
    public Class<SequenceLinear> layerType() {
        return SequenceLinear.class;
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
    public Object weight(SequenceLinear layer) {
        return layer.weight;
    }
}
