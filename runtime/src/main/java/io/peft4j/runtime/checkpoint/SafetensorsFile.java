package io.peft4j.runtime.checkpoint;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Reads and writes the safetensors format: an 8-byte little-endian header length {@code n}, an
 * {@code n}-byte JSON header mapping each tensor name to {@code dtype}, {@code shape} and
 * {@code data_offsets} (plus an optional {@code __metadata__} string map), then the raw
 * little-endian tensor bytes.
 *
 * <p>Reading validates the whole header against the file before any tensor is returned.
 * Tensor bytes move between the file and ND4J's native buffers in bulk, never element by element.
 */
public final class SafetensorsFile {

    /** Headers above this size are refused, as the reference implementation does. */
    public static final long MAX_HEADER_BYTES = 100L * 1024 * 1024;

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final String METADATA = "__metadata__";

    private SafetensorsFile() {
    }

    /** Parses and validates {@code file}'s header without reading tensor data. */
    public static SafetensorsHeader readHeader(Path file) {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
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
            return parseHeader(file, new String(headerBytes.array(), StandardCharsets.UTF_8), 8 + headerLength, size);
        } catch (IOException e) {
            throw new CheckpointException(file, "cannot be read: " + e, e);
        }
    }

    private static SafetensorsHeader parseHeader(Path file, String json, long dataOffset, long fileSize) {
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
                field.getValue().fields().forEachRemaining(entry -> metadata.put(entry.getKey(), entry.getValue().asText()));
            } else {
                tensors.add(tensorInfo(file, field.getKey(), field.getValue(), fileSize - dataOffset));
            }
        }
        List<TensorInfo> byOffset = new ArrayList<>(tensors);
        byOffset.sort(Comparator.comparingLong(TensorInfo::begin));
        for (int i = 1; i < byOffset.size(); i++) {
            TensorInfo previous = byOffset.get(i - 1);
            TensorInfo current = byOffset.get(i);
            if (current.begin() < previous.end()) {
                throw new CheckpointException(file, "tensors '" + previous.name() + "' [" + previous.begin() + ", "
                        + previous.end() + ") and '" + current.name() + "' [" + current.begin() + ", " + current.end() + ") overlap");
            }
        }
        return new SafetensorsHeader(List.copyOf(tensors), Map.copyOf(metadata), dataOffset, fileSize);
    }

    private static TensorInfo tensorInfo(Path file, String name, JsonNode entry, long dataBytes) {
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
            JsonNode dimension = entry.get("shape").get(i);
            if (!dimension.canConvertToLong() || dimension.asLong() < 0) {
                throw new CheckpointException(file, "malformed header: " + where + " has shape " + entry.get("shape"));
            }
            shape[i] = dimension.asLong();
        }
        long begin = entry.get("data_offsets").get(0).asLong(-1);
        long end = entry.get("data_offsets").get(1).asLong(-1);
        if (begin < 0 || end < begin || end > dataBytes) {
            throw new CheckpointException(file, where + " has data_offsets [" + begin + ", " + end
                    + "] out of range: the data section holds " + dataBytes + " bytes");
        }
        TensorInfo info = new TensorInfo(name, dtype, shape, begin, end);
        long needed = Math.multiplyExact(info.elements(), dtype.bytes());
        if (end - begin != needed) {
            throw new CheckpointException(file, where + " has data_offsets [" + begin + ", " + end + "] holding "
                    + (end - begin) + " bytes, but " + dtype + " " + java.util.Arrays.toString(shape) + " needs " + needed);
        }
        return info;
    }

    /** Reads every tensor of {@code file} in its stored dtype, after validating the header. */
    public static Map<String, INDArray> read(Path file) {
        requireLittleEndianPlatform(file);
        SafetensorsHeader header = readHeader(file);
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            for (TensorInfo info : header.tensors()) {
                ByteBuffer bytes = ByteBuffer.allocate((int) (info.end() - info.begin()));
                readFully(channel, bytes, header.dataOffset() + info.begin(), file);
                INDArray array = Nd4j.createUninitialized(info.dtype().nd4jType(), info.shape(), 'c');
                array.data().asNio().put(bytes.flip());
                tensors.put(info.name(), array);
            }
        } catch (IOException e) {
            throw new CheckpointException(file, "cannot be read: " + e, e);
        }
        return tensors;
    }

    /**
     * Writes {@code tensors}, converted to {@code storeAs}, to {@code file} (created or replaced; callers
     * that need atomicity write to a temporary file and rename it). The header is padded with spaces to a
     * multiple of 8 bytes, as the reference writer does.
     */
    public static void write(Path file, Map<String, INDArray> tensors, TensorDtype storeAs, Map<String, String> metadata) {
        requireLittleEndianPlatform(file);
        Map<String, INDArray> converted = new LinkedHashMap<>();
        ObjectNode header = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = header.putObject(METADATA);
            metadata.forEach(meta::put);
        }
        long offset = 0;
        for (Map.Entry<String, INDArray> entry : tensors.entrySet()) {
            INDArray array = entry.getValue().castTo(storeAs.nd4jType()).dup('c');
            long bytes = array.length() * storeAs.bytes();
            ObjectNode info = header.putObject(entry.getKey());
            info.put("dtype", storeAs.name());
            ArrayNode shape = info.putArray("shape");
            for (long dimension : array.shape()) {
                shape.add(dimension);
            }
            info.putArray("data_offsets").add(offset).add(offset + bytes);
            offset += bytes;
            converted.put(entry.getKey(), array);
        }
        byte[] json = header.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) / 8 * 8;
        ByteBuffer prefix = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        prefix.putLong(padded).put(json);
        while (prefix.hasRemaining()) {
            prefix.put((byte) ' ');
        }
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE, StandardOpenOption.WRITE,
                StandardOpenOption.TRUNCATE_EXISTING)) {
            writeFully(channel, prefix.flip());
            for (INDArray array : converted.values()) {
                ByteBuffer data = array.data().asNio();
                data.position(0).limit((int) (array.length() * storeAs.bytes()));
                writeFully(channel, data);
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
