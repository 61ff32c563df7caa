package io.slope.cuda;

import java.util.Arrays;
import java.util.HashMap;
import java.util.Map;
import java.util.Optional;
import java.util.Random;
import jcuda.Pointer;

/**
 * The backward operand's 2:4 metadata written by the project's kernel ({@code write_compressed_transposed_metadata},
 * compressed_metadata.cuh) at a column-mask refresh, instead of writing the dense support and compressing it: the two
 * were about 2/3 of the 72 ms a refresh every step costs at 1558M (bench/NOTES.md). cuSPARSELt's metadata layout is
 * undocumented and arch/version specific, so it is learned per operand shape on the device from compressions of probe
 * supports (⌈log2 G⌉ + 2 of them, G groups), checked to be a bijection between (group, slot) and 2-bit fields, and
 * then verified byte for byte against cuSPARSELt's compression of a random mask (groups keeping 0, 1 or 2) before it
 * is used. A shape that fails keeps the compress, with one line on stderr saying why.
 *
 * <p>Padding fields (2-bit fields no group owns, if the layout has any) keep what cuSPARSELt wrote there in the
 * all-{0,1} probe: the learning requires them to be the same in every probe, and the writer ORs its fields into that
 * per-word template. Slot 0 of a group is its lower kept index: learned from the all-{0,1} and all-{2,3} probes (the
 * field that holds 0 must hold 2), and the random verification would fail on any other order.
 */
final class CompressedMetadata {
    /**
     * One shape's learned layout for the dIn × dOut operand: per 2-bit field gid·2 + slot or -1 (int32, 4 bytes per
     * field, 2 per weight), and per 32-bit word the padding bits; the metadata starts after {@code valueBytes}.
     */
    record Layout(long valueBytes, long words, DevicePointer map, DevicePointer padding) {}

    private record Shape(int dOut, int dIn) {}

    private static final int THREADS = 256;
    private final CudaDevice device;
    private final CusparseLt cusparse;
    /** Per layer shape (d_out × d_in): the verified layout, or empty where the compress stays. */
    private final Map<Shape, Optional<Layout>> layouts = new HashMap<>();

    CompressedMetadata(CudaDevice device, CusparseLt cusparse) {
        this.device = device;
        this.cusparse = cusparse;
    }

    /**
     * The verified layout of a d_out × d_in layer's backward operand, learned now if this shape has not been tried; null
     * where it failed, or while a CUDA Graph is being recorded (learning synchronises, allocates and downloads; the
     * caller then compresses, and learning happens at an eager call).
     */
    Layout layout(int dOut, int dIn) {
        Shape shape = new Shape(dOut, dIn);
        Optional<Layout> known = layouts.get(shape);
        if (known == null) {
            if (device.capturing()) {
                return null;
            }
            known = Optional.ofNullable(learn(dOut, dIn));
            layouts.put(shape, known);
        }
        return known.orElse(null);
    }

    /** Writes the metadata of the operand at {@code compressed} from the column mask (its values region untouched). */
    void write(Layout layout, long compressed, long columnMask, int dOut, int dIn, long errorWord) {
        writeMetadata(layout, compressed + layout.valueBytes(), columnMask, dOut, dIn, errorWord);
    }

    private void writeMetadata(Layout layout, long metadata, long columnMask, int dOut, int dIn, long errorWord) {
        device.launch("write_compressed_transposed_metadata", blocks(layout.words()), 1, THREADS, 0, metadata,
                layout.map().address(), layout.padding().address(), columnMask, dOut, dIn, layout.words(), errorWord);
    }

    private Layout learn(int dOut, int dIn) {
        String shape = "the " + dIn + "×" + dOut + " backward operand of " + dOut + "×" + dIn + " layers";
        CusparseLt.Operand probe = cusparse.operand(dIn, dOut);
        long valueBytes = (long) dIn * dOut;  // dIn·dOut/2 bf16 values
        long metaBytes = probe.compressedBytes - valueBytes;
        long groups = (long) dIn * dOut / 4;
        if (metaBytes <= 0 || metaBytes % 4 != 0 || metaBytes * 4 < 2 * groups || 2 * groups > Integer.MAX_VALUE) {
            device.synchronize();
            probe.free();
            return rejected(shape, "its metadata region of " + metaBytes + " bytes is not whole 32-bit words with a"
                    + " 2-bit field for each of the " + 2 * groups + " kept entries");
        }
        long words = metaBytes / 4;
        long fields = 16 * words;
        DevicePointer[] temporary = new DevicePointer[7];
        DevicePointer map = null;
        DevicePointer padding = null;
        boolean kept = false;
        try {
            DevicePointer mask = temporary[0] = device.allocate(4L * dOut / 32 * dIn);
            DevicePointer support = temporary[1] = device.allocate(2L * dIn * dOut);
            DevicePointer low = temporary[2] = device.allocate(4 * fields);
            DevicePointer hits = temporary[3] = device.allocate(4 * 2 * groups);
            DevicePointer status = temporary[4] = device.allocate(8);  // {bad fields or pairs, support error}
            DevicePointer ours = temporary[5] = device.allocate(metaBytes);
            map = device.allocate(4 * fields);
            padding = device.allocate(metaBytes);
            device.memsetZero(status, 8);
            long meta = probe.compressed.address() + valueBytes;
            long bad = status.address();
            long supportError = bad + 4;

            compressProbe(probe, mask, support, dOut, dIn, -1, supportError);
            launch("metadata_learn_low", fields, low.address(), map.address(), meta, fields);
            compressProbe(probe, mask, support, dOut, dIn, -2, supportError);
            launch("metadata_learn_high", fields, map.address(), low.address(), meta, fields, bad);
            int bits = 64 - Long.numberOfLeadingZeros(groups - 1);  // ⌈log2 G⌉
            for (int p = 0; p < bits; p++) {
                compressProbe(probe, mask, support, dOut, dIn, p, supportError);
                launch("metadata_learn_bit", fields, map.address(), low.address(), meta, fields, p, bad);
            }
            device.memsetZero(hits, 4 * 2 * groups);
            launch("metadata_learn_finish", fields, map.address(), low.address(), hits.address(), fields, groups, bad);
            // The padding template from the all-{0,1} probe, compressed again (the last probe was a bit probe).
            compressProbe(probe, mask, support, dOut, dIn, -1, supportError);
            launch("metadata_learn_check", Math.max(2 * groups, words), hits.address(), 2 * groups,
                    padding.address(), meta, map.address(), words, bad);
            int[] failures = new int[2];
            device.copyToHost(Pointer.to(failures), status, 8);
            if (failures[0] != 0 || failures[1] != 0) {
                return rejected(shape, failures[0] + " of its " + fields + " metadata fields or (group, slot) pairs"
                        + " did not map one to one (" + (bits + 2) + " probe compressions)"
                        + (failures[1] != 0 ? "; a probe support reported error " + failures[1] : ""));
            }

            // Verification: cuSPARSELt's compression of a random mask's support against our writer, byte for byte.
            int[] random = randomColumnMask(dOut, dIn, new Random(31L * dOut + dIn));
            device.copyToDevice(mask, Pointer.to(random), 4L * random.length);
            device.launch("column_mask_support_transposed", blocks(groups), 1, THREADS, 0, support.address(),
                    mask.address(), dOut, dIn, supportError);
            probe.compress(support.address());
            Layout layout = new Layout(valueBytes, words, map, padding);
            writeMetadata(layout, ours.address(), mask.address(), dOut, dIn, supportError);
            byte[] compressed = new byte[Math.toIntExact(probe.compressedBytes)];
            byte[] mine = new byte[Math.toIntExact(metaBytes)];
            device.copyToHost(Pointer.to(compressed), probe.compressed, probe.compressedBytes);
            device.copyToHost(Pointer.to(mine), ours, metaBytes);
            device.copyToHost(Pointer.to(failures), status, 8);
            byte[] theirs = Arrays.copyOfRange(compressed, Math.toIntExact(valueBytes), compressed.length);
            int mismatch = Arrays.mismatch(theirs, mine);
            if (mismatch >= 0 || failures[1] != 0) {
                return rejected(shape, mismatch >= 0 ? "its metadata written from a random mask differs from"
                        + " cuSPARSELt's compression first at byte " + mismatch + " of " + metaBytes
                        : "the random mask's support reported error " + failures[1]);
            }
            kept = true;
            System.err.println("slope: 2:4 metadata of " + shape + " written by slope's kernel (layout learned from"
                    + " cuSPARSELt " + cusparse.version() + ", " + (fields - 2 * groups) + " padding fields,"
                    + " verified)");
            return layout;
        } finally {
            device.synchronize();
            probe.free();
            for (DevicePointer p : temporary) {
                if (p != null) {
                    device.free(p);
                }
            }
            if (!kept) {
                for (DevicePointer p : new DevicePointer[] {map, padding}) {
                    if (p != null) {
                        device.free(p);
                    }
                }
            }
        }
    }

    /** Compresses the support of probe mask {@code probe} (metadata_probe_column_mask) into the probe operand. */
    private void compressProbe(CusparseLt.Operand probe, DevicePointer mask, DevicePointer support, int dOut, int dIn,
            int which, long supportError) {
        device.launch("metadata_probe_column_mask", blocks((long) dOut / 32 * dIn), 1, THREADS, 0, mask.address(),
                dOut, dIn, which);
        device.launch("column_mask_support_transposed", blocks((long) dIn * dOut / 4), 1, THREADS, 0,
                support.address(), mask.address(), dOut, dIn, supportError);
        probe.compress(support.address());
    }

    /**
     * A column mask (PackedMasks' words) whose groups of 4 along d_out keep a random one of the 6 pairs mostly, else
     * one entry or none (transposedSlots pads those: the padding rule is verified too).
     */
    static int[] randomColumnMask(int dOut, int dIn, Random random) {
        int[] pairs = {0x3, 0x5, 0x9, 0x6, 0xA, 0xC};
        int[] words = new int[dOut / 32 * dIn];
        for (int c = 0; c < dIn; c++) {
            for (int g = 0; g < dOut / 4; g++) {
                int r = random.nextInt(16);
                int bits = r < 10 ? pairs[r % 6] : r < 14 ? 1 << (r - 10) : 0;
                words[(4 * g / 32) * dIn + c] |= bits << ((4 * g) % 32);
            }
        }
        return words;
    }

    private Layout rejected(String shape, String why) {
        System.err.println("slope: our 2:4 metadata writer is off for " + shape + " (cuSPARSELt's compress stays): "
                + why);
        return null;
    }

    private void launch(String kernel, long n, Object... args) {
        device.launch(kernel, blocks(n), 1, THREADS, 0, args);
    }

    private static int blocks(long n) {
        return (int) Math.max(1, Math.min((n + THREADS - 1) / THREADS, 65535L * 32));
    }

    /** Frees every learned layout (the caller has synchronised). */
    void free() {
        for (Optional<Layout> l : layouts.values()) {
            l.ifPresent(layout -> {
                device.free(layout.map());
                device.free(layout.padding());
            });
        }
        layouts.clear();
    }
}
