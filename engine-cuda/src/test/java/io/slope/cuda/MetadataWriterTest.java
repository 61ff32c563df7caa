package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.cuda.GpuParity.Two;
import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.sparse.NmPattern;
import org.junit.jupiter.api.Test;

/**
 * The backward operand's 2:4 metadata written by our kernel at a refresh (CompressedMetadata): its layout, learned from
 * cuSPARSELt on this device, verifies for the shapes layers use (d_out × d_in, both orientations of GPT-2 1558M's);
 * a refresh then leaves the compressed operand (values and metadata) bit for bit as cuSPARSELt's compress of the
 * support does, groups keeping 0, 1 and 2 included; and dX after refreshes matches the CPU on this path. Each test
 * restores the shared backend's choice of path.
 */
class MetadataWriterTest {
    private static final int[][] SHAPES = {{256, 256}, {512, 128}, {128, 512}, {1600, 4800}, {4800, 1600},
        {1600, 6400}, {6400, 1600}};

    @Test
    void learnedLayoutsVerify() {
        CudaBackend gpu = GpuBackends.get(CudaBackend.Precision.BF16);
        for (int[] s : SHAPES) {
            assertTrue(gpu.ownMetadataVerified(s[0], s[1]), "metadata layout of " + s[0] + "×" + s[1]
                    + " layers' backward operand did not verify (stderr says why)");
        }
    }

    @Test
    void refreshWritesTheBytesOfCuSparseLtsCompress() {
        GpuParity t = new GpuParity(CudaBackend.Precision.BF16);
        boolean before = t.gpu.writesOwnMetadata();
        try {
            for (int[] s : SHAPES) {
                int dOut = s[0];
                int dIn = s[1];
                String shape = dOut + "×" + dIn + ", seed " + t.seed;
                assertTrue(t.gpu.ownMetadataVerified(dOut, dIn), "layout verified, " + shape);
                SparseLinear w = t.gpu.sparseLinear(t.randomValues(dOut * dIn, 0.1), dOut, dIn, NmPattern.twoFour(),
                        true, DType.F32);
                int k = w.keptPerRow();
                for (int step = 0; step < 2; step++) {
                    double[] values = t.randomValues(dOut * k, 0.1);
                    for (int i = 0; i < values.length; i++) {
                        if (t.random.nextInt(4) == 0) {
                            values[i] = 0;  // more groups keeping fewer than 2 (padded by transposedSlots)
                        }
                    }
                    t.gpu.upload(w.values(), values);
                    t.gpu.writeOwnMetadata(true);
                    t.gpu.updateSparseOperands(w, true);
                    byte[] ours = t.gpu.compressedBackward(w);
                    t.gpu.writeOwnMetadata(false);
                    t.gpu.updateSparseOperands(w, true);
                    byte[] theirs = t.gpu.compressedBackward(w);
                    assertNotNull(ours, "backward operand, " + shape);
                    int[] keptPerGroup = keptPerGroup(t.gpu.columnMask(w), dOut, dIn);
                    for (int kept = 0; kept <= 2; kept++) {
                        assertTrue(keptPerGroup[kept] > 0, "groups keeping " + kept + ", " + shape);
                    }
                    assertArrayEquals(theirs, ours, "backward operand after a refresh, step " + step + ", " + shape);
                }
                System.out.println("metadata writer == cuSPARSELt compress: " + shape);
            }
        } finally {
            t.gpu.writeOwnMetadata(before);
        }
    }

    @Test
    void dxAfterRefreshesMatchesTheCpu() {
        int dOut = 64;
        int dIn = 96;
        NmPattern p = NmPattern.twoFour();
        GpuParity t = new GpuParity(CudaBackend.Precision.BF16);
        boolean before = t.gpu.writesOwnMetadata();
        try {
            t.gpu.writeOwnMetadata(true);
            assertTrue(t.gpu.ownMetadataVerified(dOut, dIn), "layout verified");
            t.gpu.chooseDx(dIn, dOut, SparseMaskRoundTripTest.ROWS, false);
            String what = "BF16 " + dOut + "×" + dIn + " double-pruned, our metadata, seed " + t.seed;
            int[] kept = SparseMaskRoundTripTest.randomRowMask(t, dOut, dIn, p);
            byte[] column = SparseMaskRoundTripTest.randomColumnMask(t, kept, dOut, dIn, p);
            double[] values = t.randomValues(dOut * (dIn / 2), 0.1);
            for (int i = 0; i < values.length; i++) {
                values[i] = Bf16.value(Bf16.bits(values[i]));
            }
            Two<SparseLinear> w = t.two(s -> s.backend().restoreSparseLinear(values, kept, column, dOut, dIn, p, true,
                    s.isGpu() ? DType.F32 : DType.F64));
            SparseMaskRoundTripTest.matmulParity(t, w, dOut, dIn, what);
            for (int refresh = 0; refresh < 2; refresh++) {
                t.both(s -> s.backend().updateSparseOperands(s.of(w), true));
                assertArrayEquals(t.cpu.columnMask(w.cpu()), t.gpu.columnMask(w.gpu()), "column mask, " + what);
                assertNotNull(t.gpu.compressedBackward(w.gpu()), "dX on the 2:4 operand, " + what);
                SparseMaskRoundTripTest.matmulParity(t, w, dOut, dIn, what + ", after refresh " + refresh);
            }
            System.out.println("dX on our metadata matches the CPU: " + what);
        } finally {
            t.gpu.writeOwnMetadata(before);
        }
    }

    /** How many groups of 4 along d_out keep 0, 1, 2, 3 or 4 entries of a byte-per-weight column mask. */
    private static int[] keptPerGroup(byte[] mask, int dOut, int dIn) {
        int[] counts = new int[5];
        for (int g = 0; g < dOut; g += 4) {
            for (int c = 0; c < dIn; c++) {
                int n = 0;
                for (int j = 0; j < 4; j++) {
                    n += mask[(g + j) * dIn + c];
                }
                counts[n]++;
            }
        }
        return counts;
    }
}
