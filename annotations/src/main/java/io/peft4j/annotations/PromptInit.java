package io.peft4j.annotations;

/** How prompt-tuning rows are initialised (Hugging Face PEFT's {@code PromptTuningInit}). */
public enum PromptInit {

    /** N(0, 1), as an untrained embedding. */
    RANDOM,

    /** The vocabulary rows of the tokenised {@link PromptTuning#text()}, repeated or cut to n. */
    TEXT,

    /** Vocabulary rows sampled uniformly at random. */
    VOCAB_SAMPLE
}
