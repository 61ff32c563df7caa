package io.slope.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.regex.Matcher;
import java.util.regex.Pattern;

/**
 * cuSPARSELt through java.lang.foreign (ADR 004): one handle per process; per 2:4 operand a structured
 * descriptor and its compressed buffer (compression with the plan-free {@code Compress2}); per operand and batch
 * width a plan. Its algorithm is searched once per operand shape and batch width, on scratch buffers, never on a live
 * output, and kept in {@link #choices()}; {@link #reuse} hands recorded ones back so that a resumed run computes the
 * same bits (issue 14). Every status is checked.
 *
 * <p>Orientation: the sparse operand A is row-major m×k with its 2:4 groups along k; B is column-major k×n (a
 * row-major n×k activation); D is column-major m×n (a row-major n×m output). bf16 operands, fp32 accumulation.
 */
final class CusparseLt implements AutoCloseable {
    /** Size of each opaque cuSPARSELt struct in 0.8.x and later (earlier versions: 1024); checked on the device. */
    static final long OPAQUE_BYTES = 512;
    static final long OPAQUE_ALIGNMENT = 16;
    private static final int CUDA_R_16BF = 14;
    private static final int ORDER_COL = 1;
    private static final int ORDER_ROW = 2;
    private static final int SPARSITY_50_PERCENT = 0;
    private static final int OP_NON_TRANSPOSE = 0;
    private static final int COMPUTE_32F = 2;
    private static final int ALG_DEFAULT = 0;
    /** cusparseLtMatmulDescAttribute_t CUSPARSELT_MATMUL_BIAS_POINTER: a device pointer, a value of D's type per row. */
    private static final int MATMUL_BIAS_POINTER = 8;
    /** cusparseLtMatmulAlgAttribute_t: what cusparseLtMatmulSearch chooses, each an int. */
    private static final int ALG_CONFIG_ID = 0;
    private static final int ALG_SPLIT_K = 3;
    private static final int ALG_SPLIT_K_MODE = 4;
    private static final int ALG_SPLIT_K_BUFFERS = 5;
    /** Prefix of this library's keys among a backend's kernel choices. */
    static final String CHOICE_PREFIX = "cusparseLt ";
    private static final int ALIGNMENT_BYTES = 16;
    private static final long SEARCH_WORKSPACE_BYTES = 64L << 20;

    private final Arena arena = Arena.ofShared();
    private final CudaDevice device;
    private final MemorySegment handle;
    private final MethodHandle destroy;
    private final MethodHandle getVersion;
    private final MethodHandle structuredInit;
    private final MethodHandle denseInit;
    private final MethodHandle matmulDescInit;
    private final MethodHandle matmulDescSetAttribute;
    private final MethodHandle algSelectionInit;
    private final MethodHandle algGetAttribute;
    private final MethodHandle algSetAttribute;
    private final MethodHandle planInit;
    private final MethodHandle getWorkspace;
    private final MethodHandle compressedSize2;
    private final MethodHandle compress2;
    private final MethodHandle search;
    private final MethodHandle matmul;
    private final MemorySegment alpha;
    private final MemorySegment beta;
    private final MemorySegment streams;
    /** Per operand shape and batch width, the algorithm: searched by this process's plans or handed to reuse. */
    private final Map<String, Algorithm> choices = new HashMap<>();

    /**
     * What cusparseLtMatmulSearch chooses for a plan: the kernel configuration and the split-K it runs with, written
     * as e.g. {@code config=3 splitK=1 splitKMode=0 splitKBuffers=0} among the kernel choices.
     */
    record Algorithm(int configId, int splitK, int splitKMode, int splitKBuffers) {
        private static final Pattern TEXT = Pattern.compile(
                "config=(-?\\d+) splitK=(-?\\d+) splitKMode=(-?\\d+) splitKBuffers=(-?\\d+)");

        @Override
        public String toString() {
            return "config=" + configId + " splitK=" + splitK + " splitKMode=" + splitKMode + " splitKBuffers="
                    + splitKBuffers;
        }

        static Algorithm parse(String key, String text) {
            Matcher m = TEXT.matcher(text);
            if (!m.matches()) {
                throw new IllegalArgumentException("kernel choice '" + key + "': " + text
                        + " is not config=… splitK=… splitKMode=… splitKBuffers=… (integers)");
            }
            return new Algorithm(Integer.parseInt(m.group(1)), Integer.parseInt(m.group(2)),
                    Integer.parseInt(m.group(3)), Integer.parseInt(m.group(4)));
        }
    }

    /** A 2:4 sparse operand: m×k row-major, its descriptor and compressed buffer on the device. */
    final class Operand {
        final int m;
        final int k;
        final MemorySegment descriptor;
        final DevicePointer compressed;
        final long compressedBytes;
        final DevicePointer compressBuffer;

        private Operand(int m, int k) {
            this.m = m;
            this.k = k;
            this.descriptor = opaque();
            check("cusparseLtStructuredDescriptorInit", call(structuredInit, handle, descriptor, (long) m, (long) k,
                    (long) k, ALIGNMENT_BYTES, CUDA_R_16BF, ORDER_ROW, SPARSITY_50_PERCENT));
            MemorySegment size = arena.allocate(JAVA_LONG);
            MemorySegment bufferSize = arena.allocate(JAVA_LONG);
            check("cusparseLtSpMMACompressedSize2", call(compressedSize2, handle, descriptor, size, bufferSize));
            this.compressedBytes = size.get(JAVA_LONG, 0);
            this.compressed = device.allocate(compressedBytes);
            this.compressBuffer = device.allocate(bufferSize.get(JAVA_LONG, 0));
        }

        /** Compresses a dense row-major bf16 m×k matrix (2:4 along k) into this operand's buffer, on the stream. */
        void compress(long denseBf16) {
            check("cusparseLtSpMMACompress2", call(compress2, handle, descriptor, 1, OP_NON_TRANSPOSE,
                    MemorySegment.ofAddress(denseBf16), MemorySegment.ofAddress(compressed.address()),
                    MemorySegment.ofAddress(compressBuffer.address()), MemorySegment.ofAddress(
                            device.streamHandle())));
        }

        void free() {
            device.free(compressed);
            device.free(compressBuffer);
        }
    }

    /**
     * D (m×n, column-major) = A·B (+ bias, one bf16 value per row of D, added to the fp32 accumulator before D is
     * rounded) for one operand and batch width, with its searched or recorded algorithm.
     */
    final class Plan {
        final int n;
        final Algorithm algorithm;
        private final MemorySegment plan;
        private final DevicePointer workspace;
        private final long workspaceBytes;

        private Plan(Operand a, int n, long bias) {
            this.n = n;
            MemorySegment b = opaque();
            check("cusparseLtDenseDescriptorInit(B)", call(denseInit, handle, b, (long) a.k, (long) n, (long) a.k,
                    ALIGNMENT_BYTES, CUDA_R_16BF, ORDER_COL));
            MemorySegment d = opaque();
            check("cusparseLtDenseDescriptorInit(D)", call(denseInit, handle, d, (long) a.m, (long) n, (long) a.m,
                    ALIGNMENT_BYTES, CUDA_R_16BF, ORDER_COL));
            MemorySegment desc = opaque();
            check("cusparseLtMatmulDescriptorInit", call(matmulDescInit, handle, desc, OP_NON_TRANSPOSE,
                    OP_NON_TRANSPOSE, a.descriptor, b, d, d, COMPUTE_32F));
            if (bias != 0L) {
                MemorySegment pointer = arena.allocate(ADDRESS);
                pointer.set(ADDRESS, 0, MemorySegment.ofAddress(bias));
                check("cusparseLtMatmulDescSetAttribute(BIAS_POINTER)", call(matmulDescSetAttribute, handle, desc,
                        MATMUL_BIAS_POINTER, pointer, ADDRESS.byteSize()));
            }
            MemorySegment alg = opaque();
            check("cusparseLtMatmulAlgSelectionInit", call(algSelectionInit, handle, alg, desc, ALG_DEFAULT));
            String key = choiceKey(a, n, bias != 0L);
            Algorithm chosen = choices.get(key);
            if (chosen != null) {
                select(alg, chosen);
            }
            this.plan = opaque();
            check("cusparseLtMatmulPlanInit", call(planInit, handle, plan, desc, alg));
            if (chosen == null) {
                searchAlgorithm(a, n);
            }
            // Sized for the plan's algorithm: a split-K one may need more than the default.
            MemorySegment ws = arena.allocate(JAVA_LONG);
            check("cusparseLtMatmulGetWorkspace", call(getWorkspace, handle, plan, ws));
            this.workspaceBytes = ws.get(JAVA_LONG, 0);
            this.workspace = device.allocate(workspaceBytes);
            this.algorithm = chosen != null ? chosen : selected(alg);
            choices.put(key, algorithm);
        }

        /** cusparseLtMatmulSearch times the configurations and sets the fastest on the plan and its selection. */
        private void searchAlgorithm(Operand a, int n) {
            MemorySegment ws = arena.allocate(JAVA_LONG);
            check("cusparseLtMatmulGetWorkspace", call(getWorkspace, handle, plan, ws));
            // The search may settle on a split-K configuration that needs more workspace than the default one: it
            // gets a generous buffer, and the plan's workspace is sized after it from the chosen configuration.
            long searchWorkspaceBytes = Math.max(ws.get(JAVA_LONG, 0), SEARCH_WORKSPACE_BYTES);
            DevicePointer searchWorkspace = device.allocate(searchWorkspaceBytes);
            DevicePointer scratchB = null;
            DevicePointer scratchD = null;
            // Freed even when the search fails (a batch too large for the device): a leak would keep the memory that
            // running the micro-batch in smaller passes needs.
            try {
                // The search runs the product many times on the D it is given: scratch buffers, never a live output.
                scratchB = device.allocate(2L * a.k * n);
                scratchD = device.allocate(2L * a.m * n);
                device.fillBf16(scratchB, (long) a.k * n, 0.01f);
                alpha.set(JAVA_FLOAT, 0, 1f);
                beta.set(JAVA_FLOAT, 0, 0f);
                check("cusparseLtMatmulSearch", call(search, handle, plan, alpha, MemorySegment.ofAddress(
                        a.compressed.address()), MemorySegment.ofAddress(scratchB.address()), beta,
                        MemorySegment.ofAddress(scratchD.address()), MemorySegment.ofAddress(scratchD.address()),
                        MemorySegment.ofAddress(searchWorkspace.address()), streams, 1));
            } finally {
                device.synchronize();
                for (DevicePointer p : new DevicePointer[] {scratchB, scratchD, searchWorkspace}) {
                    if (p != null) {
                        device.free(p);
                    }
                }
            }
        }

        /** Frees the plan's workspace (once the queued work that uses it is done). */
        void free() {
            device.free(workspace);
        }

        /** D = A·B on the stream (D overwritten; C is D at beta 0, so it is never read). */
        void multiply(Operand a, long b, long d) {
            alpha.set(JAVA_FLOAT, 0, 1f);
            beta.set(JAVA_FLOAT, 0, 0f);
            check("cusparseLtMatmul", call(matmul, handle, plan, alpha, MemorySegment.ofAddress(
                    a.compressed.address()), MemorySegment.ofAddress(b), beta, MemorySegment.ofAddress(d),
                    MemorySegment.ofAddress(d), MemorySegment.ofAddress(workspace.address()), streams, 1));
        }
    }

    CusparseLt(CudaDevice device) {
        this.device = device;
        SymbolLookup lib = NativeLibraries.load("cuSPARSELt", List.of("libcusparseLt.so.0", "libcusparseLt.so"),
                arena);
        Linker linker = Linker.nativeLinker();
        MethodHandle init = bind(linker, lib, "cusparseLtInit", ADDRESS);
        destroy = bind(linker, lib, "cusparseLtDestroy", ADDRESS);
        getVersion = bind(linker, lib, "cusparseLtGetVersion", ADDRESS, ADDRESS);
        structuredInit = bind(linker, lib, "cusparseLtStructuredDescriptorInit", ADDRESS, ADDRESS, JAVA_LONG,
                JAVA_LONG, JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT);
        denseInit = bind(linker, lib, "cusparseLtDenseDescriptorInit", ADDRESS, ADDRESS, JAVA_LONG, JAVA_LONG,
                JAVA_LONG, JAVA_INT, JAVA_INT, JAVA_INT);
        matmulDescInit = bind(linker, lib, "cusparseLtMatmulDescriptorInit", ADDRESS, ADDRESS, JAVA_INT, JAVA_INT,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT);
        matmulDescSetAttribute = bind(linker, lib, "cusparseLtMatmulDescSetAttribute", ADDRESS, ADDRESS, JAVA_INT,
                ADDRESS, JAVA_LONG);
        algSelectionInit = bind(linker, lib, "cusparseLtMatmulAlgSelectionInit", ADDRESS, ADDRESS, ADDRESS,
                JAVA_INT);
        algGetAttribute = bind(linker, lib, "cusparseLtMatmulAlgGetAttribute", ADDRESS, ADDRESS, JAVA_INT, ADDRESS,
                JAVA_LONG);
        algSetAttribute = bind(linker, lib, "cusparseLtMatmulAlgSetAttribute", ADDRESS, ADDRESS, JAVA_INT, ADDRESS,
                JAVA_LONG);
        planInit = bind(linker, lib, "cusparseLtMatmulPlanInit", ADDRESS, ADDRESS, ADDRESS, ADDRESS);
        getWorkspace = bind(linker, lib, "cusparseLtMatmulGetWorkspace", ADDRESS, ADDRESS, ADDRESS);
        compressedSize2 = bind(linker, lib, "cusparseLtSpMMACompressedSize2", ADDRESS, ADDRESS, ADDRESS, ADDRESS);
        compress2 = bind(linker, lib, "cusparseLtSpMMACompress2", ADDRESS, ADDRESS, JAVA_INT, JAVA_INT, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS);
        search = bind(linker, lib, "cusparseLtMatmulSearch", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_INT);
        matmul = bind(linker, lib, "cusparseLtMatmul", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, JAVA_INT);
        handle = opaque();
        check("cusparseLtInit", call(init, handle));
        alpha = arena.allocate(JAVA_FLOAT);
        beta = arena.allocate(JAVA_FLOAT);
        streams = arena.allocate(ADDRESS);
        streams.set(ADDRESS, 0, MemorySegment.ofAddress(device.streamHandle()));
    }

    /** The library's version as major·1000 + minor·100 + patch. */
    int version() {
        MemorySegment v = arena.allocate(JAVA_INT);
        check("cusparseLtGetVersion", call(getVersion, handle, v));
        return v.get(JAVA_INT, 0);
    }

    /** The algorithm chosen per key so far, and those handed to {@link #reuse} not yet needed. */
    Map<String, String> choices() {
        Map<String, String> out = new HashMap<>();
        choices.forEach((key, algorithm) -> out.put(key, algorithm.toString()));
        return out;
    }

    /**
     * Reuses recorded algorithms (the entries of {@code recorded} under this library's prefix) for operand shapes and
     * batch widths not planned yet, instead of searching.
     */
    void reuse(Map<String, String> recorded) {
        recorded.forEach((key, text) -> {
            if (key.startsWith(CHOICE_PREFIX)) {
                choices.putIfAbsent(key, Algorithm.parse(key, text));
            }
        });
    }

    /**
     * A plan's key among the kernel choices: the operand's m×k (bf16, 2:4 along k) times a k×n batch, and whether its
     * epilogue adds a bias (the search may choose another kernel then).
     */
    private static String choiceKey(Operand a, int n, boolean bias) {
        return CHOICE_PREFIX + "m=" + a.m + " k=" + a.k + " n=" + n + (bias ? " bias" : "");
    }

    /**
     * Sets a chosen algorithm on a selection before its plan is made. Split-K is set only where the search split K,
     * as PyTorch's cuSPARSELt path does; otherwise the selection keeps its default.
     */
    private void select(MemorySegment alg, Algorithm algorithm) {
        setAlgAttribute(alg, ALG_CONFIG_ID, "CONFIG_ID", algorithm.configId());
        if (algorithm.splitK() > 1) {
            setAlgAttribute(alg, ALG_SPLIT_K, "SPLIT_K", algorithm.splitK());
            setAlgAttribute(alg, ALG_SPLIT_K_MODE, "SPLIT_K_MODE", algorithm.splitKMode());
            setAlgAttribute(alg, ALG_SPLIT_K_BUFFERS, "SPLIT_K_BUFFERS", algorithm.splitKBuffers());
        }
    }

    /** The algorithm a selection holds (after a search: the one it chose). */
    private Algorithm selected(MemorySegment alg) {
        return new Algorithm(algAttribute(alg, ALG_CONFIG_ID, "CONFIG_ID"), algAttribute(alg, ALG_SPLIT_K, "SPLIT_K"),
                algAttribute(alg, ALG_SPLIT_K_MODE, "SPLIT_K_MODE"),
                algAttribute(alg, ALG_SPLIT_K_BUFFERS, "SPLIT_K_BUFFERS"));
    }

    private void setAlgAttribute(MemorySegment alg, int attribute, String name, int value) {
        MemorySegment v = arena.allocate(JAVA_INT);
        v.set(JAVA_INT, 0, value);
        check("cusparseLtMatmulAlgSetAttribute(" + name + ")", call(algSetAttribute, handle, alg, attribute, v, 4L));
    }

    private int algAttribute(MemorySegment alg, int attribute, String name) {
        MemorySegment v = arena.allocate(JAVA_INT);
        check("cusparseLtMatmulAlgGetAttribute(" + name + ")", call(algGetAttribute, handle, alg, attribute, v, 4L));
        return v.get(JAVA_INT, 0);
    }

    Operand operand(int m, int k) {
        return new Operand(m, k);
    }

    Plan plan(Operand a, int n) {
        return new Plan(a, n, 0L);
    }

    /**
     * A plan whose product adds {@code bias} in its epilogue: one value per row of D at a fixed address, of D's type
     * (bf16; cuSPARSELt reads an fp32 bias as pairs of bf16).
     */
    Plan plan(Operand a, int n, long bias) {
        return new Plan(a, n, bias);
    }

    /** Whether a row-major m×k operand times a k×n activation fits the library's bf16 shape rules. */
    static boolean fits(int m, int k, int n) {
        return m % 32 == 0 && k % 32 == 0 && n % 16 == 0 && m >= 32 && k >= 32;
    }

    private MemorySegment opaque() {
        return arena.allocate(OPAQUE_BYTES, OPAQUE_ALIGNMENT);
    }

    private static MethodHandle bind(Linker linker, SymbolLookup lib, String name, MemoryLayout... args) {
        MemorySegment symbol = lib.find(name).orElseThrow(() -> new IllegalStateException(
                "cuSPARSELt has no symbol " + name));
        return linker.downcallHandle(symbol, FunctionDescriptor.of(JAVA_INT, args));
    }

    private static int call(MethodHandle h, Object... args) {
        try {
            return (int) h.invokeWithArguments(args);
        } catch (Throwable t) {
            throw new IllegalStateException("cuSPARSELt call failed: " + t, t);
        }
    }

    private static void check(String what, int status) {
        if (status != 0) {
            throw new IllegalStateException(what + " returned cusparseStatus " + status);
        }
    }

    @Override
    public void close() {
        check("cusparseLtDestroy", call(destroy, handle));
        arena.close();
    }
}
