package io.peft4j.samples.spam;

import jakarta.mail.BodyPart;
import jakarta.mail.MessagingException;
import jakarta.mail.Multipart;
import jakarta.mail.Part;
import jakarta.mail.Session;
import jakarta.mail.internet.MimeMessage;
import java.io.ByteArrayInputStream;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.Properties;
import org.jsoup.Jsoup;

/**
 * The readable text of a raw RFC 822 message: its subject and its body parts (plain text preferred,
 * HTML converted to text), decoded by Jakarta Mail and jsoup; headers and markup are dropped.
 */
final class EmailText {

    private static final Session SESSION = Session.getInstance(new Properties());

    private EmailText() {
    }

    /** Subject and body as one whitespace-collapsed string; fails on a message with no text. */
    static String of(String raw) throws MessagingException, IOException {
        // The corpus stores each message's bytes as characters 0-255.
        MimeMessage message = new MimeMessage(SESSION, new ByteArrayInputStream(raw.getBytes(StandardCharsets.ISO_8859_1)));
        String subject = message.getSubject() == null ? "" : message.getSubject();
        String text = (subject + "\n" + bodyOf(message)).replaceAll("\\s+", " ").strip();
        if (text.isEmpty()) {
            throw new MessagingException("no subject and no text part");
        }
        return text;
    }

    private static String bodyOf(Part part) throws MessagingException, IOException {
        if (part.isMimeType("text/plain")) {
            return String.valueOf(part.getContent());
        }
        if (part.isMimeType("text/html")) {
            return Jsoup.parse(String.valueOf(part.getContent())).text();
        }
        if (part.isMimeType("multipart/alternative")) {
            Multipart alternatives = (Multipart) part.getContent();
            String html = null;
            for (int i = 0; i < alternatives.getCount(); i++) {
                BodyPart alternative = alternatives.getBodyPart(i);
                if (alternative.isMimeType("text/plain")) {
                    return String.valueOf(alternative.getContent());
                }
                if (html == null) {
                    html = bodyOf(alternative);
                }
            }
            return html == null ? "" : html;
        }
        if (part.isMimeType("multipart/*")) {
            Multipart parts = (Multipart) part.getContent();
            StringBuilder text = new StringBuilder();
            for (int i = 0; i < parts.getCount(); i++) {
                text.append(bodyOf(parts.getBodyPart(i))).append('\n');
            }
            return text.toString();
        }
        if (part.isMimeType("message/rfc822")) {
            return bodyOf((Part) part.getContent());
        }
        return ""; // attachments: images, archives, signatures
    }
}
