package io.peft4j.runtime.method;

import java.lang.annotation.Annotation;

/**
 * A method's settings given in code rather than by annotations: which layers, by name, and how
 * (Hugging Face PEFT's {@code PeftConfig}). Passed with {@code PeftModel.Builder#config} or
 * {@code AdapterOptions#withConfig}; the method reads it with {@link AttachContext#config}.
 */
public interface MethodConfig {

    /** The annotation of the method this config is for ({@code LoRA.class}, ...). */
    Class<? extends Annotation> annotation();
}
