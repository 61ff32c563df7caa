package io.slope.cuda;

import io.slope.engine.backend.DType;
import io.slope.engine.backend.Tensor;
import java.util.SplittableRandom;

/**
 * Causal attention forward and backward, each attention implementation side by side on the same random bf16 data:
 * milliseconds (mean of 20 after a warm-up, CUDA events), TF/s and the time over the FLOP floor at a given matrix rate.
 * FLOP: the forward's QKᵀ and PV over the causal half, 2·B·H·T²·hs; the backward's five products, 2.5× that.
 *
 * <p>{@code AttentionBench peakTflops B×T×heads×headSize ...}
 */
public final class AttentionBench {
    private static final int REPS = 20;

    private AttentionBench() {}

    public static void main(String[] args) {
        double peak = Double.parseDouble(args[0]);
        for (CudaBackend.Attention attention : new CudaBackend.Attention[] {CudaBackend.Attention.OWN,
                CudaBackend.Attention.CUDNN}) {
            try (CudaBackend b = new CudaBackend(0, CudaBackend.Precision.BF16, attention)) {
                for (int i = 1; i < args.length; i++) {
                    String[] s = args[i].split("x");
                    run(b, peak, Integer.parseInt(s[0]), Integer.parseInt(s[1]), Integer.parseInt(s[2]),
                            Integer.parseInt(s[3]));
                }
            }
        }
    }

    private static void run(CudaBackend b, double peak, int B, int T, int heads, int hs) {
        int C = heads * hs;
        SplittableRandom random = new SplittableRandom(T + heads);
        Tensor qkv = b.zeros(DType.BF16, B * T, 3 * C);
        b.upload(qkv, random.doubles((long) B * T * 3 * C, -1, 1).toArray());
        Tensor out = b.zeros(DType.BF16, B * T, C);
        Tensor dout = b.zeros(DType.BF16, B * T, C);
        b.upload(dout, random.doubles((long) B * T * C, -1, 1).toArray());
        Tensor dqkv = b.zeros(DType.BF16, B * T, 3 * C);
        Tensor state = b.attentionState(B, T, heads);
        CudaDevice device = b.device();
        Runnable forward = () -> b.attentionForward(out, state, qkv, B, T, heads);
        Runnable backward = () -> b.attentionBackward(dqkv, dout, qkv, out, state, B, T, heads);
        device.eventMillis(forward, 3);
        device.eventMillis(backward, 3);
        float fwdMs = device.eventMillis(forward, REPS);
        float bwdMs = device.eventMillis(backward, REPS);
        double fwdFlop = 2.0 * B * heads * (double) T * T * hs;
        double bwdFlop = 2.5 * fwdFlop;
        double floorMs = (fwdFlop + bwdFlop) / (peak * 1e12) * 1e3;
        System.out.printf("{\"bench\": \"attention\", \"implementation\": \"%s\", \"B\": %d, \"T\": %d, \"heads\": %d, "
                + "\"headSize\": %d, \"forwardMs\": %.4f, \"backwardMs\": %.4f, \"forwardTflops\": %.1f, "
                + "\"backwardTflops\": %.1f, \"floorMs\": %.4f, \"overFloor\": %.2f}%n", b.attentionImplementation(), B,
                T, heads, hs, fwdMs, bwdMs, fwdFlop / fwdMs / 1e9, bwdFlop / bwdMs / 1e9, floorMs,
                (fwdMs + bwdMs) / floorMs);
        b.device().synchronize();
    }
}
