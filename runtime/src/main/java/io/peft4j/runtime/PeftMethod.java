package io.peft4j.runtime;

/** The PEFT methods a model's annotations can declare; {@link PeftModel.Builder#only} picks among them. */
public enum PeftMethod {

    /** {@code @LoRA}: low-rank updates of a weight, mergeable. */
    LORA("@LoRA", "LORA"),

    /** {@code @Adapter}: bottleneck adapters after a layer's output, not mergeable (PEFT has no such type). */
    ADAPTER("@Adapter", "BOTTLENECK"),

    /** {@code @PromptTuning}: trainable virtual tokens in front of the embedding output. */
    PROMPT_TUNING("@PromptTuning", "PROMPT_TUNING"),

    /** {@code @PrefixTuning}: trainable key and value prefixes in every adapted attention layer. */
    PREFIX_TUNING("@PrefixTuning", "PREFIX_TUNING");

    private final String annotation;
    private final String peftType;

    PeftMethod(String annotation, String peftType) {
        this.annotation = annotation;
        this.peftType = peftType;
    }

    /** The annotation that declares it, for messages. */
    public String annotation() {
        return annotation;
    }

    /** The {@code peft_type} of its {@code adapter_config.json}. */
    public String peftType() {
        return peftType;
    }
}
