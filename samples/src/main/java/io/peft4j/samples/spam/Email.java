package io.peft4j.samples.spam;

/**
 * One message of the SpamAssassin corpus, reduced to its subject and body text.
 *
 * @param id    the corpus group and file id, e.g. {@code spam-1/00001}
 * @param spam  whether it comes from a spam folder
 * @param text  subject, then body, headers and HTML removed, whitespace collapsed
 */
public record Email(String id, boolean spam, String text) {
}
