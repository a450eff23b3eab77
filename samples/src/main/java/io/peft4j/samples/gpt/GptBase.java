package io.peft4j.samples.gpt;

import io.peft4j.runtime.checkpoint.SafetensorsFile;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.DigestInputStream;
import java.security.MessageDigest;
import java.security.NoSuchAlgorithmException;
import java.util.HexFormat;
import java.util.Map;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * A saved base model read once: its config, its weights by name, and an identity
 * ({@code peft4j-gpt@<sha-256 prefix of the file>}) that adapters record as
 * {@code base_model_name_or_path}, so that an adapter trained on another base is recognised.
 */
public record GptBase(Path file, GptConfig config, Map<String, INDArray> weights, String id) {

    public static GptBase read(Path file) {
        if (!Files.isRegularFile(file)) {
            throw new IllegalArgumentException("no base model at " + file
                    + ": pretrain one with -Dsample.main=io.peft4j.samples.gpt.GptPretrain");
        }
        GptConfig config = GptConfig.fromMetadata(SafetensorsFile.readHeader(file).metadata(), file.toString());
        return new GptBase(file, config, SafetensorsFile.read(file), "peft4j-gpt@" + sha256Prefix(file));
    }

    /** A fresh model (in a new graph) holding a copy of these weights. */
    public GptModel newModel() {
        GptModel model = new GptModel(SameDiff.create(), config, 0);
        model.load(weights);
        return model;
    }

    private static String sha256Prefix(Path file) {
        try (InputStream in = new DigestInputStream(Files.newInputStream(file), MessageDigest.getInstance("SHA-256"))) {
            MessageDigest digest = ((DigestInputStream) in).getMessageDigest();
            in.transferTo(OutputStream.nullOutputStream());
            return HexFormat.of().formatHex(digest.digest()).substring(0, 16);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot read " + file, e);
        } catch (NoSuchAlgorithmException e) {
            throw new IllegalStateException(e);
        }
    }
}
