package io.peft4j.runtime;

import java.util.Locale;

/**
 * How many of a model's parameters are trained.
 *
 * <p>{@link #toString()} prints Hugging Face PEFT's {@code print_trainable_parameters} line
 * exactly: {@code trainable params: 12,288 || all params: 1,062,912 || trainable%: 1.1561}.
 *
 * @param trainable parameters that receive updates (the adapters, plus any layers kept trainable)
 * @param total     every parameter of the model, adapters included
 */
public record ParameterCount(long trainable, long total) {

    /** {@code 100 · trainable / total}. */
    public double trainablePercent() {
        return total == 0 ? 0 : 100.0 * trainable / total;
    }

    @Override
    public String toString() {
        return String.format(Locale.ROOT, "trainable params: %,d || all params: %,d || trainable%%: %.4f",
                trainable, total, trainablePercent());
    }
}
