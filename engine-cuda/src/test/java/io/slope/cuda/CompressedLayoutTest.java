package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.SparseLinear;
import io.slope.engine.sparse.NmPattern;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.Test;

/**
 * The spike of issue 5: new kept values written in place into cuSPARSELt's compressed buffer (values in row-major order
 * of the kept entries, then metadata) give the same bytes as compressing the same matrix afresh with
 * {@code cusparseLtSpMMACompress2}, on the library version this machine has. And the opaque struct size the bindings
 * assume is the one in the shipped header.
 */
class CompressedLayoutTest {
    @Test
    void valuesWrittenInPlaceEqualAFreshCompression() {
        GpuParity t = new GpuParity(CudaBackend.Precision.BF16);
        int[][] shapes = {{256, 256}, {4 * 128, 128}, {128, 4 * 128}, {1600, 4800}};
        for (int[] s : shapes) {
            int dOut = s[0];
            int dIn = s[1];
            double[] dense = t.randomValues(dOut * dIn, 0.1);
            SparseLinear w = t.gpu.sparseLinear(dense, dOut, dIn, NmPattern.twoFour(), true, DType.F32);
            String shape = dOut + "×" + dIn + ", seed " + t.seed;
            assertArrayEquals(t.gpu.freshlyCompressedForward(w), t.gpu.compressedForward(w),
                    "compressed W^R at creation, " + shape);
            for (int step = 0; step < 2; step++) {
                t.gpu.upload(w.values(), t.randomValues(dOut * w.keptPerRow(), 0.1));
                t.gpu.updateSparseOperands(w, false);
                byte[] inPlace = t.gpu.compressedForward(w);
                byte[] fresh = t.gpu.freshlyCompressedForward(w);
                assertEquals(fresh.length, inPlace.length);
                assertArrayEquals(fresh, inPlace, "compressed W^R after an in-place value write, " + shape);
            }
            System.out.println("in-place values == fresh compression: " + shape + " ("
                    + t.gpu.compressedForward(w).length + " bytes)");
        }
    }

    @Test
    void opaqueStructSizeMatchesTheShippedHeader() throws IOException {
        GpuBackends.get(CudaBackend.Precision.BF16);
        Path lib = NativeLibraries.find(java.util.List.of("libcusparseLt.so.0")).orElseThrow();
        Path header = lib.getParent().resolveSibling("include").resolve("cusparseLt.h");
        assertTrue(Files.isRegularFile(header), "cusparseLt.h beside " + lib);
        String text = Files.readString(header);
        for (String type : new String[] {"cusparseLtHandle_t", "cusparseLtMatDescriptor_t",
                "cusparseLtMatmulDescriptor_t", "cusparseLtMatmulAlgSelection_t", "cusparseLtMatmulPlan_t"}) {
            Matcher m = Pattern.compile("alignas\\((\\d+)\\)\\s*uint8_t\\s+data\\[(\\d+)\\];\\s*}\\s*" + type)
                    .matcher(text);
            assertTrue(m.find(), type + " not found in " + header);
            assertEquals(CusparseLt.OPAQUE_BYTES, Long.parseLong(m.group(2)), type + " size in " + header);
            assertEquals(CusparseLt.OPAQUE_ALIGNMENT, Long.parseLong(m.group(1)), type + " alignment");
        }
        System.out.println("cuSPARSELt opaque structs: " + CusparseLt.OPAQUE_BYTES + " bytes per " + header);
    }
}
