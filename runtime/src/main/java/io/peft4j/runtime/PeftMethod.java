package io.peft4j.runtime;

/** The PEFT methods a model's annotations can declare; {@link PeftModel.Builder#only} picks among them. */
public enum PeftMethod {

    /** {@code @LoRA}: low-rank updates of a weight, mergeable. */
    LORA,

    /** {@code @Adapter}: bottleneck adapters after a layer's output, not mergeable. */
    ADAPTER,

    /** {@code @PromptTuning}: trainable virtual tokens in front of the embedding output. */
    PROMPT_TUNING,

    /** {@code @PrefixTuning}: trainable key and value prefixes in every adapted attention layer. */
    PREFIX_TUNING
}
