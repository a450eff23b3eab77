package io.peft4j.samples.gpt;

import org.nd4j.autodiff.samediff.SDVariable;

/**
 * One attention layer's cached keys and values, {@code [batch, P, d]} each (heads not yet split):
 * every position seen so far, prefix-tuning prefixes and prompt-tuning virtual tokens first.
 */
public record KeyValue(SDVariable keys, SDVariable values) {
}
