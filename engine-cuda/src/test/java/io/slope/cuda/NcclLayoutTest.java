package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import java.lang.foreign.MemoryLayout.PathElement;
import java.util.Base64;
import org.junit.jupiter.api.Test;

/**
 * What the NCCL binding assumes without a GPU: ncclConfig_t laid out as nccl.h 2.32.3 compiles on x86-64 (offsets read
 * from a C program built against that header: size 120, netName at 32, commName at 48, collnetEnable at 56,
 * nvlsHostMode at 112), the 128-byte unique id, and the {@code nccl:<base64>} id form.
 */
class NcclLayoutTest {
    @Test
    void theConfigStructMatchesTheHeader() {
        assertEquals(120, Nccl.CONFIG.byteSize());
        assertEquals(8, Nccl.CONFIG.byteOffset(PathElement.groupElement("magic")));
        assertEquals(12, Nccl.CONFIG.byteOffset(PathElement.groupElement("version")));
        assertEquals(16, Nccl.CONFIG.byteOffset(PathElement.groupElement("blocking")));
        assertEquals(32, Nccl.CONFIG.byteOffset(PathElement.groupElement("netName")));
        assertEquals(48, Nccl.CONFIG.byteOffset(PathElement.groupElement("commName")));
        assertEquals(56, Nccl.CONFIG.byteOffset(PathElement.groupElement("collnetEnable")));
        assertEquals(112, Nccl.CONFIG.byteOffset(PathElement.groupElement("nvlsHostMode")));
        assertEquals(128, Nccl.UNIQUE_ID.byteSize());
    }

    @Test
    void anIdRoundTripsThroughItsTextFormAndAnythingElseIsRefused() {
        byte[] id = new byte[128];
        for (int i = 0; i < id.length; i++) {
            id[i] = (byte) (31 * i + 7);
        }
        String text = NcclCollective.ID_PREFIX + Base64.getEncoder().encodeToString(id);
        assertArrayEquals(id, NcclCollective.parseId(text));
        assertThrows(IllegalArgumentException.class, () -> NcclCollective.parseId("127.0.0.1:4000:ab12"));
        assertThrows(IllegalArgumentException.class, () -> NcclCollective.parseId("nccl:not base64!"));
        assertThrows(IllegalArgumentException.class, () -> NcclCollective.parseId("nccl:"
                + Base64.getEncoder().encodeToString(new byte[64])));
    }

    @Test
    void tensorTypesMapToNcclTypes() {
        assertEquals(7, Nccl.dataType(io.slope.engine.backend.DType.F32));
        assertEquals(9, Nccl.dataType(io.slope.engine.backend.DType.BF16));
        assertEquals(8, Nccl.dataType(io.slope.engine.backend.DType.F64));
    }
}
