package io.peft4j.runtime.checkpoint;

import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.lang.ref.Reference;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Comparator;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.zip.CRC32C;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Reads and writes the safetensors format: an 8-byte little-endian header length {@code n}, an
 * {@code n}-byte UTF-8 JSON header mapping each tensor name to {@code dtype}, {@code shape} and
 * {@code data_offsets} (plus an optional {@code __metadata__} string map), then the raw little-endian
 * tensor bytes.
 *
 * <p>Reading follows the specification and Hugging Face's reference reader: the header length is
 * within the file and at most 100,000,000 bytes; the header is UTF-8, starts with {@code {}, is one JSON
 * object (trailing spaces allowed) without duplicate keys; shapes and offsets are non-negative integers;
 * element counts and byte sizes cannot overflow; the tensors, ordered by offset, cover the data section
 * from 0 to its last byte with no hole and no overlap, each exactly its dtype's size times its element
 * count. Every failure is a {@link CheckpointException} naming the file (and the tensor), raised before
 * any tensor is returned.
 *
 * <p>Writing records a CRC-32C of every tensor's bytes in the metadata ({@value #CHECKSUMS}); reading
 * verifies them when present (files other writers made have none), so a flipped byte is refused with
 * the tensor's name.
 */
public final class SafetensorsFile {

    /** Headers above this size are refused, as the reference implementation does. */
    public static final long MAX_HEADER_BYTES = 100_000_000L;
    /** Tensors above this size are refused: peft4j copies a tensor through one Java buffer. */
    public static final long MAX_TENSOR_BYTES = Integer.MAX_VALUE - 8;
    /** Metadata key of the per-tensor CRC-32C checksums, a JSON object of tensor name to hex. */
    public static final String CHECKSUMS = "peft4j.crc32c";

    private static final ObjectMapper JSON = new ObjectMapper()
            .enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION)
            .enable(DeserializationFeature.FAIL_ON_TRAILING_TOKENS);
    private static final String METADATA = "__metadata__";

    private SafetensorsFile() {
    }

    /** Parses and validates {@code file}'s header without reading tensor data. */
    public static SafetensorsHeader readHeader(Path file) {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            return readHeader(file, channel);
        } catch (IOException e) {
            throw new CheckpointException(file, "cannot be read: " + e, e);
        }
    }

    private static SafetensorsHeader readHeader(Path file, FileChannel channel) throws IOException {
        long size = channel.size();
        if (size < 8) {
            throw new CheckpointException(file, "truncated: " + size + " bytes, too short for the 8-byte header length");
        }
        ByteBuffer lengthBytes = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
        readFully(channel, lengthBytes, 0, file);
        long headerLength = lengthBytes.flip().getLong();
        if (headerLength < 0 || headerLength > MAX_HEADER_BYTES) {
            throw new CheckpointException(file, "header length " + Long.toUnsignedString(headerLength)
                    + " exceeds the " + MAX_HEADER_BYTES + "-byte limit: not a safetensors file, or a corrupt one");
        }
        if (8 + headerLength > size) {
            throw new CheckpointException(file, "header length " + headerLength + " runs past the end of the file ("
                    + size + " bytes): the file is truncated");
        }
        ByteBuffer headerBytes = ByteBuffer.allocate((int) headerLength);
        readFully(channel, headerBytes, 8, file);
        String json;
        try {
            json = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                    .onUnmappableCharacter(CodingErrorAction.REPORT).decode(headerBytes.flip()).toString();
        } catch (CharacterCodingException e) {
            throw new CheckpointException(file, "the header is not valid UTF-8");
        }
        return parseHeader(file, json, 8 + headerLength, size);
    }

    private static SafetensorsHeader parseHeader(Path file, String json, long dataOffset, long fileSize) {
        if (!json.startsWith("{")) {
            throw new CheckpointException(file, "malformed header: it must start with '{' (the header length may be wrong)");
        }
        JsonNode root;
        try {
            root = JSON.readTree(json);
        } catch (JsonProcessingException e) {
            throw new CheckpointException(file, "malformed JSON header: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new CheckpointException(file, "malformed header: the JSON must be an object of tensor entries");
        }
        List<TensorInfo> tensors = new ArrayList<>();
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> fields = root.fields(); fields.hasNext(); ) {
            Map.Entry<String, JsonNode> field = fields.next();
            if (field.getKey().equals(METADATA)) {
                readMetadata(file, field.getValue(), metadata);
            } else {
                tensors.add(tensorInfo(file, field.getKey(), field.getValue()));
            }
        }
        List<TensorInfo> byOffset = new ArrayList<>(tensors);
        byOffset.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        long covered = 0;
        for (TensorInfo tensor : byOffset) {
            if (tensor.begin() != covered) {
                throw new CheckpointException(file, "tensor '" + tensor.name() + "' starts at data offset " + tensor.begin() + ", but the "
                        + "tensors before it end at " + covered + ": tensors must cover the data section without " + (tensor.begin() > covered
                        ? "holes" : "overlapping"));
            }
            covered = tensor.end();
        }
        long dataBytes = fileSize - dataOffset;
        if (covered != dataBytes) {
            throw new CheckpointException(file, "the tensors cover " + covered + " bytes of data, but the file holds " + dataBytes
                    + " after the header: " + (covered > dataBytes ? "data_offsets out of range: the file is truncated"
                    : "trailing bytes, or a header length that does not match the header"));
        }
        return new SafetensorsHeader(List.copyOf(tensors), Map.copyOf(metadata), dataOffset, fileSize);
    }

    private static void readMetadata(Path file, JsonNode node, Map<String, String> metadata) {
        if (!node.isObject()) {
            throw new CheckpointException(file, "malformed header: __metadata__ must be an object of strings");
        }
        for (Iterator<Map.Entry<String, JsonNode>> entries = node.fields(); entries.hasNext(); ) {
            Map.Entry<String, JsonNode> entry = entries.next();
            if (!entry.getValue().isTextual()) {
                throw new CheckpointException(file, "malformed header: __metadata__ value '" + entry.getKey() + "' is not a string");
            }
            metadata.put(entry.getKey(), entry.getValue().textValue());
        }
    }

    private static TensorInfo tensorInfo(Path file, String name, JsonNode entry) {
        String where = "tensor '" + name + "'";
        if (!entry.isObject() || !entry.path("dtype").isTextual() || !entry.path("shape").isArray()
                || !entry.path("data_offsets").isArray() || entry.path("data_offsets").size() != 2) {
            throw new CheckpointException(file, "malformed header: " + where + " needs dtype, shape and data_offsets [begin, end]");
        }
        String dtypeName = entry.get("dtype").asText();
        TensorDtype dtype = TensorDtype.named(dtypeName).orElseThrow(() -> new CheckpointException(file,
                where + " has dtype " + dtypeName + ", which peft4j does not read (F32, F16, BF16, F64)"));
        long[] shape = new long[entry.get("shape").size()];
        for (int i = 0; i < shape.length; i++) {
            shape[i] = nonNegativeLong(file, where + " has shape " + entry.get("shape"), entry.get("shape").get(i));
        }
        long begin = nonNegativeLong(file, where + " has data_offsets " + entry.get("data_offsets"), entry.get("data_offsets").get(0));
        long end = nonNegativeLong(file, where + " has data_offsets " + entry.get("data_offsets"), entry.get("data_offsets").get(1));
        if (end < begin) {
            throw new CheckpointException(file, where + " has data_offsets [" + begin + ", " + end + "]: the end is before the begin");
        }
        TensorInfo info = new TensorInfo(name, dtype, shape, begin, end);
        long needed;
        try {
            needed = Math.multiplyExact(info.elements(), dtype.bytes());
        } catch (ArithmeticException overflow) {
            throw new CheckpointException(file, where + " has shape " + Arrays.toString(shape) + ", whose size overflows 64 bits");
        }
        if (end - begin != needed) {
            throw new CheckpointException(file, where + " has data_offsets [" + begin + ", " + end + "] holding "
                    + (end - begin) + " bytes, but " + dtype + " " + Arrays.toString(shape) + " needs " + needed);
        }
        return info;
    }

    private static long nonNegativeLong(Path file, String context, JsonNode value) {
        if (!value.isIntegralNumber() || !value.canConvertToLong() || value.longValue() < 0) {
            throw new CheckpointException(file, "malformed header: " + context + ": every entry must be a non-negative integer");
        }
        return value.longValue();
    }

    /** Reads every tensor of {@code file} in its stored dtype, after validating the header and any checksums. */
    public static Map<String, INDArray> read(Path file) {
        return read(file, true);
    }

    /**
     * As {@link #read(Path)}; unless {@code allowNonFinite}, a tensor holding NaN or ±Inf (found by bit
     * pattern, before any cast) is refused with its name and the element's index.
     */
    public static Map<String, INDArray> read(Path file, boolean allowNonFinite) {
        requireLittleEndianPlatform(file);
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        readRaw(file, allowNonFinite).forEach((name, raw) -> tensors.put(name, toArray(raw)));
        return tensors;
    }

    /**
     * As {@link #read(Path, boolean)}, without ND4J: every tensor as its dtype, shape and bytes (for tools
     * that run without a backend).
     */
    public static Map<String, RawTensor> readRaw(Path file, boolean allowNonFinite) {
        Map<String, RawTensor> tensors = new LinkedHashMap<>();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            SafetensorsHeader header = readHeader(file, channel);
            Map<String, String> checksums = checksums(file, header);
            for (TensorInfo info : header.tensors()) {
                long length = info.end() - info.begin();
                if (length > MAX_TENSOR_BYTES) {
                    throw new CheckpointException(file, "tensor '" + info.name() + "' holds " + length + " bytes; peft4j reads tensors of "
                            + "up to " + MAX_TENSOR_BYTES + " bytes (adapters are far smaller; is this a base model?)");
                }
                ByteBuffer bytes = ByteBuffer.allocate((int) length);
                readFully(channel, bytes, header.dataOffset() + info.begin(), file);
                bytes.flip();
                String expected = checksums.get(info.name());
                if (expected != null && !expected.equals(crc32c(bytes))) {
                    throw new CheckpointException(file, "tensor '" + info.name() + "' does not match its checksum: the file was "
                            + "changed or damaged after it was written");
                }
                if (!allowNonFinite) {
                    long index = NonFinite.firstIndex(info.dtype(), bytes);
                    if (index >= 0) {
                        throw new CheckpointException(file, "tensor '" + info.name() + "' contains NaN or Inf (element " + index
                                + "); pass allowNonFinite to load it anyway");
                    }
                }
                tensors.put(info.name(), new RawTensor(info.dtype(), info.shape(), bytes));
            }
        } catch (IOException e) {
            throw new CheckpointException(file, "cannot be read: " + e, e);
        }
        return tensors;
    }

    private static INDArray toArray(RawTensor raw) {
        if (raw.elements() == 0) {
            return Nd4j.create(raw.dtype().nd4jType(), raw.shape(), 'c');
        }
        INDArray array = Nd4j.createUninitialized(raw.dtype().nd4jType(), raw.shape(), 'c');
        array.data().asNio().put(raw.data().duplicate());
        return array;
    }

    /** The checksums the writer recorded, by tensor name (empty for files without them). */
    private static Map<String, String> checksums(Path file, SafetensorsHeader header) {
        String recorded = header.metadata().get(CHECKSUMS);
        if (recorded == null) {
            return Map.of();
        }
        try {
            JsonNode node = JSON.readTree(recorded);
            Map<String, String> checksums = new LinkedHashMap<>();
            node.fields().forEachRemaining(entry -> checksums.put(entry.getKey(), entry.getValue().asText()));
            return checksums;
        } catch (JsonProcessingException | RuntimeException e) {
            throw new CheckpointException(file, "the checksums in __metadata__." + CHECKSUMS + " are malformed");
        }
    }

    static String crc32c(ByteBuffer bytes) {
        CRC32C crc = new CRC32C();
        crc.update(bytes.duplicate());
        return HexFormat.of().toHexDigits((int) crc.getValue());
    }

    /**
     * Writes {@code tensors}, converted to {@code storeAs}, to {@code file} (created or replaced, with its folder; callers
     * that need atomicity write to a temporary file and rename it), with a CRC-32C of each tensor in the
     * metadata. The header is padded with spaces to a multiple of 8 bytes, as the reference writer does.
     */
    public static void write(Path file, Map<String, INDArray> tensors, TensorDtype storeAs, Map<String, String> metadata) {
        requireLittleEndianPlatform(file);
        Map<String, RawTensor> raw = new LinkedHashMap<>();
        // The buffers below are views of native memory that ND4J frees once its array is collected:
        // the arrays stay reachable until the file is written.
        List<INDArray> viewed = new ArrayList<>();
        for (Map.Entry<String, INDArray> entry : tensors.entrySet()) {
            INDArray array = entry.getValue().castTo(storeAs.nd4jType()).dup('c');
            viewed.add(array);
            long bytes = array.length() * storeAs.bytes();
            ByteBuffer buffer = bytes == 0 ? ByteBuffer.allocate(0) : array.data().asNio();
            buffer.position(0).limit((int) bytes);
            raw.put(entry.getKey(), new RawTensor(storeAs, array.shape(), buffer.slice()));
        }
        try {
            writeRaw(file, raw, metadata);
        } finally {
            Reference.reachabilityFence(viewed);
        }
    }

    /**
     * Writes {@code tensors} as they are (each in its own dtype), with a CRC-32C of each in the metadata;
     * see {@link #write}. Needs no ND4J backend.
     */
    public static void writeRaw(Path file, Map<String, RawTensor> tensors, Map<String, String> metadata) {
        ObjectNode checksums = JSON.createObjectNode();
        ObjectNode header = JSON.createObjectNode();
        ObjectNode meta = header.putObject(METADATA);
        metadata.forEach(meta::put);
        long offset = 0;
        for (Map.Entry<String, RawTensor> entry : tensors.entrySet()) {
            RawTensor tensor = entry.getValue();
            long bytes = tensor.data().remaining();
            checksums.put(entry.getKey(), crc32c(tensor.data()));
            ObjectNode info = header.putObject(entry.getKey());
            info.put("dtype", tensor.dtype().name());
            ArrayNode shape = info.putArray("shape");
            for (long dimension : tensor.shape()) {
                shape.add(dimension);
            }
            info.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
        }
        meta.put(CHECKSUMS, checksums.toString());
        byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(padded).put(json);
        while (prefix.hasRemaining()) {
            prefix.put((byte) ' ');
        }
        try {
            Path parent = file.toAbsolutePath().getParent();
            if (parent != null) {
                Files.createDirectories(parent);
            }
        } catch (IOException e) {
            throw new CheckpointException(file, "cannot be written: its folder cannot be created: " + e, e);
        }
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(channel, prefix.flip());
            for (RawTensor tensor : tensors.values()) {
                writeFully(channel, tensor.data().duplicate());
            }
            channel.force(true);
        } catch (IOException e) {
            throw new CheckpointException(file, "cannot be written: " + e, e);
        }
    }

    private static void readFully(FileChannel channel, ByteBuffer buffer, long position, Path file) throws IOException {
        long at = position;
        while (buffer.hasRemaining()) {
            int read = channel.read(buffer, at);
            if (read < 0) {
                throw new CheckpointException(file, "truncated: the file ends at byte " + at);
            }
            at += read;
        }
    }

    private static void writeFully(FileChannel channel, ByteBuffer buffer) throws IOException {
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    private static void requireLittleEndianPlatform(Path file) {
        if (ByteOrder.nativeOrder() != ByteOrder.LITTLE_ENDIAN) {
            throw new CheckpointException(file, "safetensors data is little-endian and ND4J buffers here are big-endian;"
                    + " peft4j copies tensor bytes in bulk and supports little-endian platforms only");
        }
    }
}
