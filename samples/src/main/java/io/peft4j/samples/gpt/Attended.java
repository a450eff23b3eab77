package io.peft4j.samples.gpt;

import org.nd4j.autodiff.samediff.SDVariable;

/** A layer's output {@code [batch, T, d]} and the key/value cache {@code [batch, P + T, d]} after it. */
public record Attended(SDVariable output, KeyValue present) {
}
