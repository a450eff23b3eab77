package io.peft4j.runtime;

/** The PEFT methods a model's annotations can declare; {@link PeftModel.Builder#only} picks among them. */
public enum PeftMethod {

    /** {@code @LoRA}: low-rank updates of a weight, mergeable. */
    LORA,

    /** {@code @Adapter}: bottleneck adapters after a layer's output, not mergeable. */
    ADAPTER
}
