package io.peft4j.runtime.testmodel;

import io.peft4j.annotations.WeightLayout;

/** What peft4j-processor generates for {@link TokenEmbedding}, as far as the runtime uses it. */
public final class TokenEmbedding_LoRA extends FieldWeightAccessor<TokenEmbedding> {
    public TokenEmbedding_LoRA() {
        super(TokenEmbedding.class, "table", WeightLayout.IN_OUT);
    }
}
