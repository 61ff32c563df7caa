package io.slope.engine.checkpoint;

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
import java.security.MessageDigest;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * The safetensors file format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes of JSON
 * header ({@code {"__metadata__": {string: string}, name: {"dtype", "shape", "data_offsets": [begin, end]}}}, offsets
 * relative to the data section), then the data section. Written here so that the engine needs no native library; the
 * files load with the reference Python implementation (a test checks that).
 */
public final class Safetensors {
    /** Refuse absurd header lengths before allocating: a corrupted length must not become an OutOfMemoryError. */
    private static final long MAX_HEADER_BYTES = 100L << 20;
    private static final ObjectMapper JSON = new ObjectMapper();

    private Safetensors() {}

    /** What a file holds: its string metadata and its tensors, in data-section order. */
    public record Contents(Map<String, String> metadata, List<NamedTensor> tensors) {}

    /**
     * Writes the tensors in the given order and syncs the file to disk. The file must not exist yet.
     *
     * @return the SHA-256 of the whole file, hex, computed while writing
     */
    public static String write(Path file, List<NamedTensor> tensors, Map<String, String> metadata)
            throws IOException {
        byte[] header = header(tensors, metadata);
        MessageDigest sha256 = DurableFiles.newSha256();
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.CREATE_NEW, StandardOpenOption.WRITE)) {
            ByteBuffer length = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(header.length).flip();
            writeFully(channel, length, sha256);
            writeFully(channel, ByteBuffer.wrap(header), sha256);
            for (NamedTensor tensor : tensors) {
                writeFully(channel, ByteBuffer.wrap(tensor.data()), sha256);
            }
            channel.force(true);
        }
        return HexFormat.of().formatHex(sha256.digest());
    }

    /** Reads and validates a whole file; any structural problem is a {@link SafetensorsFormatException}. */
    public static Contents read(Path file) throws IOException {
        try (FileChannel channel = FileChannel.open(file, StandardOpenOption.READ)) {
            long fileSize = channel.size();
            if (fileSize < 8) {
                throw new SafetensorsFormatException(file, "truncated: " + fileSize + " bytes, less than the 8-byte"
                        + " header length");
            }
            ByteBuffer lengthBuffer = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(channel, lengthBuffer, file);
            long headerLength = lengthBuffer.flip().getLong();
            if (headerLength < 2 || headerLength > MAX_HEADER_BYTES || headerLength > fileSize - 8) {
                throw new SafetensorsFormatException(file, "header length " + headerLength
                        + " does not fit a file of " + fileSize + " bytes");
            }
            ByteBuffer headerBuffer = ByteBuffer.allocate((int) headerLength);
            readFully(channel, headerBuffer, file);
            List<Entry> entries = new ArrayList<>();
            Map<String, String> metadata = parseHeader(file, headerBuffer.array(), entries);
            long dataSize = fileSize - 8 - headerLength;
            checkLayout(file, entries, dataSize);

            List<NamedTensor> tensors = new ArrayList<>(entries.size());
            for (Entry entry : entries) {
                ByteBuffer data = ByteBuffer.allocate(Math.toIntExact(entry.end - entry.begin));
                readFully(channel, data, file);
                tensors.add(new NamedTensor(entry.name, entry.dtype, entry.shape, data.array()));
            }
            return new Contents(metadata, List.copyOf(tensors));
        }
    }

    private record Entry(String name, SafetensorsDType dtype, long[] shape, long begin, long end) {}

    private static byte[] header(List<NamedTensor> tensors, Map<String, String> metadata) {
        ObjectNode root = JSON.createObjectNode();
        if (!metadata.isEmpty()) {
            ObjectNode meta = root.putObject("__metadata__");
            metadata.forEach(meta::put);
        }
        long offset = 0;
        var names = new HashSet<String>();
        for (NamedTensor tensor : tensors) {
            if (!names.add(tensor.name())) {
                throw new IllegalArgumentException("tensor name " + tensor.name() + " appears twice");
            }
            ObjectNode node = root.putObject(tensor.name());
            node.put("dtype", tensor.dtype().name());
            ArrayNode shape = node.putArray("shape");
            for (long dim : tensor.shape()) {
                shape.add(dim);
            }
            long end = offset + tensor.data().length;
            node.putArray("data_offsets").add(offset).add(end);
            offset = end;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(root);
        } catch (JsonProcessingException e) {
            throw new IllegalStateException("a tree of strings and numbers always serialises", e);
        }
        // Pad with spaces to a multiple of 8, as the reference writer does, so the data section is 8-byte aligned
        // for readers that map the file and view it as float64.
        int padded = (json.length + 7) / 8 * 8;
        byte[] header = new byte[padded];
        System.arraycopy(json, 0, header, 0, json.length);
        java.util.Arrays.fill(header, json.length, padded, (byte) ' ');
        return header;
    }

    private static Map<String, String> parseHeader(Path file, byte[] header, List<Entry> entries)
            throws SafetensorsFormatException {
        JsonNode root;
        try {
            root = JSON.readTree(new String(header, StandardCharsets.UTF_8));
        } catch (JsonProcessingException e) {
            throw new SafetensorsFormatException(file, "header is not valid JSON: " + e.getOriginalMessage());
        }
        if (root == null || !root.isObject()) {
            throw new SafetensorsFormatException(file, "header is not a JSON object");
        }
        Map<String, String> metadata = new LinkedHashMap<>();
        for (Map.Entry<String, JsonNode> field : root.properties()) {
            String name = field.getKey();
            JsonNode node = field.getValue();
            if (name.equals("__metadata__")) {
                if (!node.isObject()) {
                    throw new SafetensorsFormatException(file, "__metadata__ is not an object");
                }
                for (Map.Entry<String, JsonNode> m : node.properties()) {
                    if (!m.getValue().isTextual()) {
                        throw new SafetensorsFormatException(file, "__metadata__." + m.getKey() + " is not a string");
                    }
                    metadata.put(m.getKey(), m.getValue().textValue());
                }
                continue;
            }
            entries.add(parseEntry(file, name, node));
        }
        return metadata;
    }

    private static Entry parseEntry(Path file, String name, JsonNode node) throws SafetensorsFormatException {
        JsonNode dtype = node.get("dtype");
        JsonNode shape = node.get("shape");
        JsonNode offsets = node.get("data_offsets");
        if (dtype == null || !dtype.isTextual() || shape == null || !shape.isArray() || offsets == null
                || !offsets.isArray() || offsets.size() != 2) {
            throw new SafetensorsFormatException(file, "tensor " + name
                    + " needs \"dtype\" (string), \"shape\" (array) and \"data_offsets\" ([begin, end])");
        }
        SafetensorsDType type;
        try {
            type = SafetensorsDType.fromSafetensorsName(dtype.textValue());
        } catch (IllegalArgumentException e) {
            throw new SafetensorsFormatException(file, "tensor " + name + ": " + e.getMessage());
        }
        long[] dims = new long[shape.size()];
        for (int i = 0; i < dims.length; i++) {
            if (!shape.get(i).canConvertToLong() || shape.get(i).longValue() < 0) {
                throw new SafetensorsFormatException(file, "tensor " + name + ": bad shape " + shape);
            }
            dims[i] = shape.get(i).longValue();
        }
        if (!offsets.get(0).canConvertToLong() || !offsets.get(1).canConvertToLong()) {
            throw new SafetensorsFormatException(file, "tensor " + name + ": bad data_offsets " + offsets);
        }
        long begin = offsets.get(0).longValue();
        long end = offsets.get(1).longValue();
        long expected;
        try {
            long count = 1;
            for (long dim : dims) {
                count = Math.multiplyExact(count, dim);
            }
            expected = Math.multiplyExact(count, (long) type.bytes());
        } catch (ArithmeticException e) {
            throw new SafetensorsFormatException(file, "tensor " + name + ": shape " + shape + " overflows");
        }
        if (begin < 0 || end - begin != expected) {
            throw new SafetensorsFormatException(file, "tensor " + name + ": data_offsets " + offsets + " hold "
                    + (end - begin) + " bytes, but " + type + " " + shape + " needs " + expected);
        }
        return new Entry(name, type, dims, begin, end);
    }

    /** As the reference reader: tensors tile the data section exactly, without gaps or overlaps. */
    private static void checkLayout(Path file, List<Entry> entries, long dataSize) throws SafetensorsFormatException {
        entries.sort(Comparator.comparingLong(Entry::begin).thenComparingLong(Entry::end));
        long expectedBegin = 0;
        for (Entry entry : entries) {
            if (entry.begin != expectedBegin) {
                throw new SafetensorsFormatException(file, "tensor " + entry.name + " starts at " + entry.begin
                        + ", expected " + expectedBegin + " (gap or overlap in data_offsets)");
            }
            expectedBegin = entry.end;
        }
        if (expectedBegin != dataSize) {
            throw new SafetensorsFormatException(file, "tensors cover " + expectedBegin
                    + " bytes but the data section has " + dataSize + (expectedBegin > dataSize ? " (truncated)" : ""));
        }
    }

    private static void writeFully(FileChannel channel, ByteBuffer buffer, MessageDigest digest) throws IOException {
        digest.update(buffer.duplicate());
        while (buffer.hasRemaining()) {
            channel.write(buffer);
        }
    }

    private static void readFully(FileChannel channel, ByteBuffer buffer, Path file) throws IOException {
        while (buffer.hasRemaining()) {
            if (channel.read(buffer) < 0) {
                throw new SafetensorsFormatException(file, "truncated");
            }
        }
    }
}
