package io.peft4j.samples.spam;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import jakarta.mail.MessagingException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Parsing raw messages into subject + body text, and the corpus' loading and split. */
class EmailTextTest {

    @Test
    void plainTextMessageKeepsSubjectAndBodyWithoutHeaders() throws Exception {
        String raw = "From: a@example.com\nSubject: Lunch tomorrow\nReceived: from mx by host\n\nShall we meet\n  at noon?\n";
        assertEquals("Lunch tomorrow Shall we meet at noon?", EmailText.of(raw));
    }

    @Test
    void quotedPrintableHtmlBecomesText() throws Exception {
        String raw = "Subject: WIN NOW\nMIME-Version: 1.0\nContent-Type: text/html; charset=\"iso-8859-1\"\n"
                + "Content-Transfer-Encoding: quoted-printable\n\n<HTML><BODY><P>Claim your =\nprize <B>today</B>!</P>"
                + "<script>x()</script></BODY></HTML>\n";
        assertEquals("WIN NOW Claim your prize today!", EmailText.of(raw));
    }

    @Test
    void multipartAlternativePrefersPlainText() throws Exception {
        String raw = "Subject: Hi\nMIME-Version: 1.0\nContent-Type: multipart/alternative; boundary=\"b\"\n\n"
                + "--b\nContent-Type: text/html\n\n<p>html version</p>\n--b\nContent-Type: text/plain\n\nplain version\n--b--\n";
        assertEquals("Hi plain version", EmailText.of(raw));
    }

    @Test
    void messageWithoutTextIsRefused() {
        assertThrows(MessagingException.class, () -> EmailText.of("From: a@example.com\n\n   \n"));
    }

    @Test
    void loadCountsBadMessagesAndSplitIsStratifiedAndDeterministic(@TempDir Path data) throws Exception {
        Files.createDirectories(data.resolve("spam-1"));
        Files.createDirectories(data.resolve("easy-ham-1"));
        for (int i = 0; i < 20; i++) {
            Files.writeString(data.resolve("spam-1").resolve(i + ".json"),
                    "{\"id\":\"" + i + "\",\"text\":\"Subject: offer " + i + "\\n\\nbuy now\"}");
            Files.writeString(data.resolve("easy-ham-1").resolve(i + ".json"),
                    "{\"id\":\"" + i + "\",\"text\":\"Subject: notes " + i + "\\n\\nsee attached\"}");
        }
        Files.writeString(data.resolve("easy-ham-1").resolve("broken.json"), "{not json");
        Files.writeString(data.resolve("easy-ham-1").resolve("empty.json"), "{\"id\":\"e\",\"text\":\"From: x\\n\\n\"}");
        SpamAssassinCorpus.Loaded loaded = SpamAssassinCorpus.load(data);
        assertEquals(40, loaded.emails().size());
        assertEquals(2, loaded.skipped());
        assertEquals(20, loaded.spam());
        SpamAssassinCorpus.Split split = SpamAssassinCorpus.split(loaded.emails(), 7, 0.6, 0.2);
        assertEquals(List.of(24, 8, 8), List.of(split.train().size(), split.validation().size(), split.test().size()));
        assertEquals(4, split.test().stream().filter(Email::spam).count(), "each part keeps the class balance");
        assertEquals(split, SpamAssassinCorpus.split(loaded.emails(), 7, 0.6, 0.2));
        assertTrue(split.train().get(0).text().startsWith("offer") || split.train().get(0).text().startsWith("notes"));
    }
}
