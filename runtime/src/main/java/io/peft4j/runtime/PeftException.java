package io.peft4j.runtime;

/**
 * A misuse or a failure that peft4j can explain: the message names the layer, the shape, the
 * annotation or the file involved and says what to do about it.
 */
public class PeftException extends RuntimeException {

    public PeftException(String message) {
        super(message);
    }

    public PeftException(String message, Throwable cause) {
        super(message, cause);
    }
}
