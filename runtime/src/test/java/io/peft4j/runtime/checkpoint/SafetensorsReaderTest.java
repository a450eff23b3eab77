package io.peft4j.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.io.RandomAccessFile;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.LinkedHashMap;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** The safetensors reader follows the specification and the reference reader: one named test per defect it used to have. */
class SafetensorsReaderTest {

    @TempDir
    Path dir;

    /** {@code header} (padded with spaces to {@code headerLength} if given) and {@code data}, as bytes on disk. */
    private Path file(String header, byte[] data) throws IOException {
        return file(header, header.getBytes(StandardCharsets.UTF_8).length, data);
    }

    private Path file(String header, long declaredLength, byte[] data) throws IOException {
        byte[] json = header.getBytes(StandardCharsets.UTF_8);
        ByteBuffer bytes = ByteBuffer.allocate(8 + json.length + data.length).order(ByteOrder.LITTLE_ENDIAN);
        bytes.putLong(declaredLength).put(json).put(data);
        Path file = dir.resolve("t.safetensors");
        Files.write(file, bytes.array());
        return file;
    }

    private static String refused(Path file) {
        return assertThrows(CheckpointException.class, () -> SafetensorsFile.read(file, false)).getMessage();
    }

    private static byte[] shorts(int... values) {
        ByteBuffer buffer = ByteBuffer.allocate(2 * values.length).order(ByteOrder.LITTLE_ENDIAN);
        for (int value : values) {
            buffer.putShort((short) value);
        }
        return buffer.array();
    }

    @Test
    void aShapeWhoseSizeOverflowsIsACheckpointException() throws IOException {
        String message = refused(file("{\"t\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,4]}}",
                new byte[4]));
        assertTrue(message.contains("'t'") && message.contains("overflows 64 bits"), message);
    }

    @Test
    void zeroElementTensorsRead() throws IOException {
        Map<String, INDArray> tensors = SafetensorsFile.read(file(
                "{\"empty\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
                        + "\"none\":{\"dtype\":\"BF16\",\"shape\":[3,0],\"data_offsets\":[0,0]},"
                        + "\"one\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", new byte[] {0, 0, (byte) 0x80, 0x3F}));
        assertArrayEquals(new long[] {0}, tensors.get("empty").shape());
        assertArrayEquals(new long[] {3, 0}, tensors.get("none").shape());
        assertEquals(1.0f, tensors.get("one").getFloat(0));
        Path written = dir.resolve("written.safetensors");
        SafetensorsFile.write(written, tensors, TensorDtype.F32, Map.of());
        assertEquals(0, SafetensorsFile.read(written).get("none").length(), "and write back");
    }

    @Test
    void aTensorAbove2GbIsRefusedBeforeAnyAllocation() throws IOException {
        long bytes = 3L * 1024 * 1024 * 1024;
        String header = "{\"huge\":{\"dtype\":\"F32\",\"shape\":[" + bytes / 4 + "],\"data_offsets\":[0," + bytes + "]}}";
        Path file = file(header, new byte[0]);
        try (RandomAccessFile sparse = new RandomAccessFile(file.toFile(), "rw")) {
            sparse.setLength(sparse.length() + bytes); // a sparse file: no 3 GB written
        }
        String message = refused(file);
        assertTrue(message.contains("'huge'") && message.contains("peft4j reads tensors of up to"), message);
    }

    @Test
    void halfPrecisionNaNsAndInfinitiesAreFoundByBitPattern() throws IOException {
        for (int pattern : new int[] {0x7e00, 0xfe00, 0x7c01, 0x7c00, 0xfc00}) {
            String message = refused(file("{\"h\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}", shorts(0x3c00, pattern)));
            assertTrue(message.contains("'h'") && message.contains("NaN or Inf (element 1)"), Integer.toHexString(pattern) + ": " + message);
        }
        for (int pattern : new int[] {0xffc0, 0x7fc0, 0x7f81, 0x7f80}) {
            String message = refused(file("{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", shorts(0x3f80, pattern)));
            assertTrue(message.contains("NaN or Inf (element 1)"), Integer.toHexString(pattern) + ": " + message);
        }
    }

    @Test
    void largeFiniteBf16ValuesAreNotMistakenForInfinity() throws IOException {
        // 0x4780 is 65,536, 0x7f7f the largest finite bfloat16 (3.39e38)
        Map<String, INDArray> tensors = SafetensorsFile.read(file("{\"b\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
                shorts(0x4780, 0x7f7f)), false);
        assertEquals(65536f, tensors.get("b").castTo(DataType.FLOAT).getFloat(0));
        assertTrue(tensors.get("b").castTo(DataType.FLOAT).getFloat(1) > 3e38f);
    }

    @Test
    void aHeaderLengthShortOfTheRealHeaderShiftsNothingInto() throws IOException {
        Path real = dir.resolve("real.safetensors");
        SafetensorsFile.write(real, Map.of("w", Nd4j.createFromArray(1f, 2f, 3f, 4f)), TensorDtype.F32, Map.of("format", "pt"));
        byte[] bytes = Files.readAllBytes(real);
        ByteBuffer view = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long length = view.getLong(0);
        for (int shortBy = 1; shortBy <= 7; shortBy++) { // inside the header's space padding, or just before it
            view.putLong(0, length - shortBy);
            Files.write(real, bytes);
            CheckpointException error = assertThrows(CheckpointException.class, () -> SafetensorsFile.read(real), "short by " + shortBy);
            assertTrue(error.getMessage().contains("header"), error.getMessage());
        }
    }

    @Test
    void offsetsMustBeIntegersCoveringTheDataWithoutHoles() throws IOException {
        Map<String, String> cases = new LinkedHashMap<>();
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                "without holes");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", "without holes");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", "trailing bytes");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                "overlapping");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[\"0\",\"4\"]}}", "non-negative integer");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[false,4]}}", "non-negative integer");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[18446744073709551616,4]}}", "non-negative integer");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "non-negative integer");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[12,16]}}",
                "Duplicate field 'a'");
        cases.put("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}} {}", "malformed JSON header");
        cases.put("{\"__metadata__\":{\"format\":1},\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "not a string");
        cases.put(" {\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", "must start with '{'");
        for (Map.Entry<String, String> entry : cases.entrySet()) {
            String message = refused(file(entry.getKey(), new byte[16]));
            assertTrue(message.contains(entry.getValue()), entry.getKey() + " → " + message);
        }
        assertEquals(4, SafetensorsFile.read(file("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}    ", new byte[16]))
                .get("a").length(), "trailing spaces (the writers' padding) are fine");
    }

    @Test
    void aFlippedDataByteIsRefusedNamingTheTensor() throws IOException {
        Path file = dir.resolve("w.safetensors");
        Map<String, INDArray> tensors = new LinkedHashMap<>();
        tensors.put("first", Nd4j.createFromArray(1f, 2f));
        tensors.put("second", Nd4j.createFromArray(3f, 4f));
        SafetensorsFile.write(file, tensors, TensorDtype.F32, Map.of());
        byte[] bytes = Files.readAllBytes(file);
        bytes[bytes.length - 3] ^= 0x10; // inside "second", keeping the value finite
        Files.write(file, bytes);
        String message = refused(file);
        assertTrue(message.contains("'second'") && message.contains("does not match its checksum"), message);
    }
}
