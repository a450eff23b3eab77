package io.peft4j.samples.data;

import java.nio.file.Files;
import java.nio.file.Path;

/**
 * Where fetched data sets and trained base models live: {@code -Dpeft4j.cache.dir}, else the ignored
 * {@code .cache} folder at the repository root (Maven runs the samples from {@code samples/}, a
 * shell from the root; both find the same folder).
 */
public final class DataCache {

    private DataCache() {
    }

    public static Path root() {
        String configured = System.getProperty("peft4j.cache.dir");
        if (configured != null) {
            return Path.of(configured);
        }
        Path here = Path.of("").toAbsolutePath();
        if (!Files.exists(here.resolve("samples")) && Files.exists(here.getParent().resolve("samples/pom.xml"))) {
            return here.getParent().resolve(".cache");
        }
        return here.resolve(".cache");
    }
}
