package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;
import io.peft4j.runtime.spi.WeightAccessor;

/** What peft4j-processor generates for {@link TokenEmbedding}. */
public final class TokenEmbedding_LoRA implements WeightAccessor<TokenEmbedding> {
    @Override
    public Class<TokenEmbedding> layerType() {
        return TokenEmbedding.class;
    }

    @Override
    public WeightLayout layout() {
        return WeightLayout.IN_OUT;
    }

    @Override
    public String weightName() {
        return "table";
    }

    @Override
    public Object weight(TokenEmbedding layer) {
        return layer.table;
    }
}
