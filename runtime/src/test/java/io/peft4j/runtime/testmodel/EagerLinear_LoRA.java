package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.spi.WeightAccessor;

/** What peft4j-processor generates for {@link EagerLinear}. */
public final class EagerLinear_LoRA implements WeightAccessor<EagerLinear> {
    @Override
    public Class<EagerLinear> layerType() {
        return EagerLinear.class;
    }

    @Override
    public WeightLayout layout() {
        return WeightLayout.OUT_IN;
    }

    @Override
    public String weightName() {
        return "weight";
    }

    @Override
    public Object weight(EagerLinear layer) {
        return layer.weight;
    }
}
