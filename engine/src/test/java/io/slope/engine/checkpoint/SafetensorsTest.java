package io.slope.engine.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.PythonOracle;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class SafetensorsTest {
    static final double[] F64_VALUES = {-1.0, -0.5, 0.0, 0.5, 1.0, 1.5};
    static final float[] F32_VALUES = {1.5f, -2.25f, 3e-8f, 65504f};

    @TempDir
    Path dir;

    static List<NamedTensor> everyType() {
        return List.of(
                NamedTensor.f64("f64", new long[] {2, 3}, F64_VALUES),
                NamedTensor.f32("f32", new long[] {4}, F32_VALUES),
                NamedTensor.f32("f32_from_doubles", new long[] {2}, new double[] {0.1, 1e-3}),
                NamedTensor.i32("i32", new long[] {2, 2}, new int[] {-1, 0, 1, Integer.MAX_VALUE}),
                NamedTensor.i64("i64", new long[] {3}, new long[] {-(1L << 40), 0, 1L << 62}),
                NamedTensor.u8("u8", new long[] {5}, new byte[] {0, 1, 127, (byte) 128, (byte) 255}),
                NamedTensor.f32("empty", new long[] {0, 3}, new float[0]),
                NamedTensor.f64("scalar", new long[] {}, new double[] {Math.PI}));
    }

    @Test
    void everyTypeRoundTripsBitForBit() throws IOException {
        Path file = dir.resolve("t.safetensors");
        String sha256 = Safetensors.write(file, everyType(), Map.of("step", "7"));
        assertEquals(DurableFiles.sha256Hex(Files.readAllBytes(file)), sha256);

        Safetensors.Contents contents = Safetensors.read(file);
        assertEquals(Map.of("step", "7"), contents.metadata());
        assertEquals(everyType(), contents.tensors());
        assertArrayEquals(F64_VALUES, contents.tensors().get(0).toDoubles());
        assertArrayEquals(new double[] {(float) 0.1, (float) 1e-3}, contents.tensors().get(2).toDoubles());
        assertEquals(0, (8 + headerLength(file)) % 8, "data section 8-byte aligned");
    }

    @Test
    void referenceImplementationReadsOurFiles() throws Exception {
        Path file = dir.resolve("ours.safetensors");
        Safetensors.write(file, everyType(), Map.of("step", "7"));
        JsonNode read = new ObjectMapper().readTree(PythonOracle.run("safetensors_oracle.py", "read", file.toString()));

        assertEquals("7", read.at("/metadata/step").asText());
        for (NamedTensor tensor : everyType()) {
            JsonNode node = read.at("/tensors/" + tensor.name());
            assertEquals(tensor.dtype().name(), node.get("dtype").asText(), tensor.name());
            assertArrayEquals(tensor.shape(), new ObjectMapper().convertValue(node.get("shape"), long[].class));
            JsonNode values = node.get("values");
            switch (tensor.dtype()) {
                case F64, F32 -> assertArrayEquals(tensor.toDoubles(),
                        new ObjectMapper().convertValue(values, double[].class), tensor.name());
                case I32 -> assertArrayEquals(tensor.toInts(), new ObjectMapper().convertValue(values, int[].class));
                case I64 -> assertArrayEquals(tensor.toLongs(), new ObjectMapper().convertValue(values, long[].class));
                case U8 -> {
                    int[] unsigned = new int[tensor.toBytes().length];
                    for (int i = 0; i < unsigned.length; i++) {
                        unsigned[i] = Byte.toUnsignedInt(tensor.toBytes()[i]);
                    }
                    assertArrayEquals(unsigned, new ObjectMapper().convertValue(values, int[].class));
                }
            }
        }
    }

    @Test
    void weReadTheReferenceImplementationsFiles() throws Exception {
        Path file = dir.resolve("theirs.safetensors");
        PythonOracle.run("safetensors_oracle.py", "write", file.toString());
        Safetensors.Contents contents = Safetensors.read(file);
        assertEquals(Map.of("written_by", "safetensors reference"), contents.metadata());
        Map<String, NamedTensor> byName = new java.util.HashMap<>();
        contents.tensors().forEach(t -> byName.put(t.name(), t));
        assertArrayEquals(F64_VALUES, byName.get("f64").toDoubles());
        assertArrayEquals(new long[] {2, 3}, byName.get("f64").shape());
        assertArrayEquals(F32_VALUES, byName.get("f32").toFloats());
        assertArrayEquals(new int[] {-1, 0, 1, Integer.MAX_VALUE}, byName.get("i32").toInts());
        assertArrayEquals(new long[] {-(1L << 40), 0, 1L << 62}, byName.get("i64").toLongs());
        assertArrayEquals(new byte[] {0, 1, 127, (byte) 128, (byte) 255}, byName.get("u8").toBytes());
        assertArrayEquals(new long[] {0, 3}, byName.get("empty").shape());
    }

    @Test
    void truncatedDataIsRefusedNamingTheFile() throws IOException {
        Path file = dir.resolve("t.safetensors");
        Safetensors.write(file, everyType(), Map.of());
        byte[] bytes = Files.readAllBytes(file);
        Files.write(file, java.util.Arrays.copyOf(bytes, bytes.length - 3));
        var e = assertThrows(SafetensorsFormatException.class, () -> Safetensors.read(file));
        assertTrue(e.getMessage().startsWith(file + ": not a valid safetensors file: tensors cover"), e.getMessage());
        assertTrue(e.getMessage().endsWith("(truncated)"), e.getMessage());
    }

    @Test
    void absurdHeaderLengthIsRefusedBeforeAllocating() throws IOException {
        Path file = dir.resolve("t.safetensors");
        Files.write(file, ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(Long.MAX_VALUE).array());
        var e = assertThrows(SafetensorsFormatException.class, () -> Safetensors.read(file));
        assertTrue(e.getMessage().contains("header length " + Long.MAX_VALUE + " does not fit"), e.getMessage());
    }

    @Test
    void shapeThatDisagreesWithTheDataSizeIsRefused() {
        var e = assertThrows(IllegalArgumentException.class,
                () -> NamedTensor.f64("w", new long[] {2, 2}, new double[3]));
        assertEquals("tensor w: shape [2, 2] of F64 needs 32 bytes, got 24", e.getMessage());
    }

    private static long headerLength(Path file) throws IOException {
        byte[] first = java.util.Arrays.copyOf(Files.readAllBytes(file), 8);
        return ByteBuffer.wrap(first).order(ByteOrder.LITTLE_ENDIAN).getLong();
    }
}
