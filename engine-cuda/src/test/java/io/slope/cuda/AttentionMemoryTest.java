package io.slope.cuda;

import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import org.junit.jupiter.api.Test;

/**
 * The attention keeps no T×T matrix: at T = 4096 with 8 heads a score matrix would take 4096²·8·4 = 512 MiB per
 * sequence; the device's free memory must drop by no more than the O(T·C) state (plus allocation granularity).
 */
class AttentionMemoryTest {
    @Test
    void peakExtraMemoryIsLinearInSequenceLength() {
        GpuParity t = new GpuParity(CudaBackend.Precision.BF16);
        int T = 4096;
        int heads = 8;
        int C = 512;
        Tensor qkv = t.gpu.zeros(DType.BF16, T, 3 * C);
        t.gpu.upload(qkv, t.randomValues(T * 3 * C, 1));
        Tensor out = t.gpu.zeros(DType.BF16, T, C);
        Tensor dout = t.gpu.zeros(DType.BF16, T, C);
        t.gpu.upload(dout, t.randomValues(T * C, 1));
        Tensor dqkv = t.gpu.zeros(DType.BF16, T, 3 * C);
        t.gpu.download(out);
        long freeBefore = t.gpu.memoryInfo()[0];
        Tensor state = t.gpu.attentionState(1, T, heads);
        t.gpu.attentionForward(out, state, qkv, 1, T, heads);
        t.gpu.attentionBackward(dqkv, dout, qkv, out, state, 1, T, heads);
        t.gpu.download(dqkv);
        long used = freeBefore - t.gpu.memoryInfo()[0];
        long linear = 2L * heads * T * 4 + (long) T * C * 4;
        long scores = (long) T * T * heads * 4;
        System.out.printf("attention T=%d: device memory used %d bytes; O(T·C) state %d; a T×T score matrix %d%n", T,
                used, linear, scores);
        // 4 MiB of slack for the allocator's 2 MiB granularity.
        assertTrue(used <= linear + (4L << 20), "attention used " + used + " bytes, state is " + linear);
    }
}
