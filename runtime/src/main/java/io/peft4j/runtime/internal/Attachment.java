package io.peft4j.runtime.internal;

import io.peft4j.runtime.spi.WeightAccessor;
import java.util.Map;
import java.util.Set;
import org.nd4j.autodiff.samediff.SameDiff;

/**
 * The extensions {@link Attacher} registered on one model, by layer path.
 *
 * @param branches            LoRA branches
 * @param accessors           the generated weight accessors of the LoRA layers
 * @param adapters            bottleneck adapters
 * @param prompts             prompt-tuned embeddings
 * @param prefixes            prefix tuning of the attention layers, or {@code null}
 * @param alsoTrainable       names of base variables kept trainable
 * @param graphs              the SameDiff graphs the model's variables live in
 * @param eagerBaseParameters parameters of a model without graphs (INDArray weights)
 */
public record Attachment(Map<String, LoraBranch> branches, Map<String, WeightAccessor<Object>> accessors,
                         Map<String, BottleneckAdapter> adapters, Map<String, PromptEmbedding> prompts, PrefixTuner prefixes,
                         Set<String> alsoTrainable, Set<SameDiff> graphs, long eagerBaseParameters) {
}
