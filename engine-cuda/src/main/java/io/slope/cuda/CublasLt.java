package io.slope.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.HashMap;
import java.util.HashSet;
import java.util.HexFormat;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * cuBLASLt through java.lang.foreign: dense GEMMs in row-major vocabulary, one plan per shape (cached), every status
 * checked. A row-major product D[M×N] = α·op(A)·op(B) + β·D is issued as the column-major Dᵀ = op(B)ᵀ·op(A)ᵀ.
 *
 * <p>Each shape's algorithm is chosen once (the fastest heuristic candidate) and kept in {@link #choices()} as the
 * bytes of its {@code cublasLtMatmulAlgo_t}, which cuBLASLt documents as serialisable for reuse with the same library
 * version; {@link #reuse} hands recorded ones back so that a resumed run computes the same bits (issue 14).
 */
final class CublasLt implements AutoCloseable {
    static final int CUDA_R_32F = 0;
    static final int CUDA_R_16BF = 14;
    static final int CUBLAS_COMPUTE_32F = 68;
    private static final int OP_N = 0;
    private static final int OP_T = 1;
    private static final int DESC_TRANSA = 3;
    private static final int DESC_TRANSB = 4;
    private static final int DESC_EPILOGUE = 7;
    private static final int DESC_BIAS_POINTER = 8;
    /** CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER and _AUX_LD (int64, in elements) of cublasLtMatmulDescAttributes_t. */
    private static final int DESC_EPILOGUE_AUX_POINTER = 11;
    private static final int DESC_EPILOGUE_AUX_LD = 12;
    private static final int PREF_MAX_WORKSPACE_BYTES = 1;
    /** cublasLtMatmulHeuristicResult_t: algo (64 bytes), workspaceSize, state, wavesCount, reserved[4]. */
    private static final long HEURISTIC_RESULT_BYTES = 96;
    private static final long ALGO_BYTES = 64;
    /** Prefix of this library's keys among a backend's kernel choices. */
    static final String CHOICE_PREFIX = "cublasLt ";

    private final Arena arena = Arena.ofShared();
    private final MethodHandle create;
    private final MethodHandle destroy;
    private final MethodHandle getVersion;
    private final MethodHandle descCreate;
    private final MethodHandle descSetAttribute;
    private final MethodHandle layoutCreate;
    private final MethodHandle preferenceCreate;
    private final MethodHandle preferenceSetAttribute;
    private final MethodHandle heuristic;
    private final MethodHandle algoCheck;
    private final MethodHandle matmul;
    private final MemorySegment handle;
    private final MemorySegment preference;
    private final MemorySegment alpha;
    private final MemorySegment beta;
    private final MemorySegment biasPointer;
    private final MemorySegment auxPointer;
    private final long workspace;
    private final long workspaceBytes;
    private final Map<Shape, Plan> plans = new HashMap<>();
    private final Set<Shape> lacking = new HashSet<>();
    /** Per shape key, the algorithm's bytes in hex: chosen by this process's plans or handed to {@link #reuse}. */
    private final Map<String, String> choices = new HashMap<>();
    private final CudaDevice device;
    /** Heuristic candidates timed per shape: the dense side searched like the sparse one (issue 5). */
    private static final int CANDIDATES = 8;

    /**
     * What a GEMM does after the product: cuBLASLt's cublasLtEpilogue_t value (cublasLt.h: BIAS = 4, GELU = 32,
     * GELU_BIAS = GELU | BIAS, GELU_AUX = GELU | 128, GELU_AUX_BIAS = GELU_AUX | BIAS, DGELU = 64 | 128), whether it
     * reads the bias pointer and
     * the aux matrix, and the suffix of its kernel-choice key. cuBLASLt's GELU is the tanh approximation, GPT-2's.
     */
    enum Epilogue {
        /** D = op(A)·op(B) (CUBLASLT_EPILOGUE_DEFAULT, never set on the descriptor). */
        NONE(1, false, false, ""),
        /** D = op(A)·op(B) + bias, the bias (D's type) broadcast along D's rows of ours. */
        BIAS(4, true, false, " bias"),
        /** D = gelu(op(A)·op(B)): a forward with no backward keeps no pre-activation. */
        GELU(32, false, false, " gelu"),
        /** D = gelu(op(A)·op(B) + bias). */
        GELU_BIAS(36, true, false, " bias gelu"),
        /** aux = op(A)·op(B), D = gelu(aux): aux in D's type and layout. */
        GELU_AUX(160, false, true, " gelu_aux"),
        /** aux = op(A)·op(B) + bias, D = gelu(aux). */
        GELU_AUX_BIAS(164, true, true, " bias gelu_aux"),
        /** D = op(A)·op(B) ⊙ gelu'(aux), aux (D's type and layout) the GELU's input saved by the forward. */
        DGELU(192, false, true, " dgelu"),
        /**
         * D = op(A)·op(B), and the bias pointer gets bias[i] = Σ_k op(A)[i][k] (M values in D's type, written, not
         * added): cuBLASLt's reduction of its "B" (our op(A)ᵀ) over K. For dW = dYᵀ·X, the bias gradient.
         */
        BGRADB(512, true, false, " bgradb");

        final int value;
        final boolean bias;
        final boolean aux;
        final String keySuffix;

        Epilogue(int value, boolean bias, boolean aux, String keySuffix) {
            this.value = value;
            this.bias = bias;
            this.aux = aux;
            this.keySuffix = keySuffix;
        }

        /** The GELU epilogues' callers overwrite D (beta 0); the others may accumulate into it. */
        boolean overwrites() {
            return aux || this == GELU || this == GELU_BIAS;
        }
    }

    /** Everything that decides a GEMM's plan. Types are cudaDataType codes. */
    record Shape(boolean transA, boolean transB, int m, int n, int k, int typeAB, int typeCD, Epilogue epilogue) {
        /** Its key among the kernel choices, e.g. {@code cublasLt NT m=512 n=2304 k=768 bf16/bf16 bias}. */
        String choiceKey() {
            return CHOICE_PREFIX + (transA ? "T" : "N") + (transB ? "T" : "N") + " m=" + m + " n=" + n + " k=" + k
                    + " " + typeName(typeAB) + "/" + typeName(typeCD) + epilogue.keySuffix;
        }

        private static String typeName(int type) {
            return type == CUDA_R_16BF ? "bf16" : "fp32";
        }
    }

    private record Plan(MemorySegment desc, MemorySegment layoutA, MemorySegment layoutB, MemorySegment layoutD,
            MemorySegment algo) {}

    CublasLt(CudaDevice device, long workspace, long workspaceBytes) {
        this.device = device;
        SymbolLookup lib = NativeLibraries.load("cuBLASLt", List.of("libcublasLt.so.13", "libcublasLt.so.12",
                "libcublasLt.so"), arena);
        Linker linker = Linker.nativeLinker();
        create = bind(linker, lib, "cublasLtCreate", ADDRESS);
        destroy = bind(linker, lib, "cublasLtDestroy", ADDRESS);
        getVersion = linker.downcallHandle(lib.find("cublasLtGetVersion").orElseThrow(),
                FunctionDescriptor.of(JAVA_LONG));
        descCreate = bind(linker, lib, "cublasLtMatmulDescCreate", ADDRESS, JAVA_INT, JAVA_INT);
        descSetAttribute = bind(linker, lib, "cublasLtMatmulDescSetAttribute", ADDRESS, JAVA_INT, ADDRESS, JAVA_LONG);
        layoutCreate = bind(linker, lib, "cublasLtMatrixLayoutCreate", ADDRESS, JAVA_INT, JAVA_LONG, JAVA_LONG,
                JAVA_LONG);
        preferenceCreate = bind(linker, lib, "cublasLtMatmulPreferenceCreate", ADDRESS);
        preferenceSetAttribute = bind(linker, lib, "cublasLtMatmulPreferenceSetAttribute", ADDRESS, JAVA_INT,
                ADDRESS, JAVA_LONG);
        heuristic = bind(linker, lib, "cublasLtMatmulAlgoGetHeuristic", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, JAVA_INT, ADDRESS, ADDRESS);
        algoCheck = bind(linker, lib, "cublasLtMatmulAlgoCheck", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS);
        matmul = bind(linker, lib, "cublasLtMatmul", ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS,
                ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG, ADDRESS);
        this.workspace = workspace;
        this.workspaceBytes = workspaceBytes;
        MemorySegment out = arena.allocate(ADDRESS);
        check("cublasLtCreate", call(create, out));
        handle = out.get(ADDRESS, 0);
        check("cublasLtMatmulPreferenceCreate", call(preferenceCreate, out));
        preference = out.get(ADDRESS, 0);
        MemorySegment ws = arena.allocate(JAVA_LONG);
        ws.set(JAVA_LONG, 0, workspaceBytes);
        check("cublasLtMatmulPreferenceSetAttribute", call(preferenceSetAttribute, preference,
                PREF_MAX_WORKSPACE_BYTES, ws, 8L));
        alpha = arena.allocate(JAVA_FLOAT);
        beta = arena.allocate(JAVA_FLOAT);
        biasPointer = arena.allocate(JAVA_LONG);
        auxPointer = arena.allocate(JAVA_LONG);
    }

    long version() {
        try {
            return (long) getVersion.invokeExact();
        } catch (Throwable t) {
            throw new IllegalStateException("cublasLtGetVersion failed", t);
        }
    }

    /**
     * Row-major D[M×N] = alpha·op(A)·op(B) + beta·D (+ bias[n] on every row when {@code bias} is not 0; the bias in
     * D's type) with op(A) M×K and op(B) K×N; A is stored M×K (K×M when transA), B is K×N (N×K when transB), all
     * densely packed. Queued on {@code stream}.
     */
    void gemm(long d, long a, boolean transA, long b, boolean transB, int M, int N, int K, float alphaValue,
            float betaValue, int typeAB, int typeCD, long bias, long stream) {
        gemm(d, a, transA, b, transB, M, N, K, alphaValue, betaValue, typeAB, typeCD,
                bias != 0 ? Epilogue.BIAS : Epilogue.NONE, bias, 0L, stream);
    }

    /**
     * {@link #gemm} with an epilogue: {@code bias} when it reads one (else 0), {@code aux} the row-major M×N matrix,
     * densely packed in D's type, that a GELU epilogue writes (GELU_AUX*: the GELU's input) or reads (DGELU). N must be
     * a multiple of 8: the aux matrix's leading dimension in cuBLASLt's column-major view (our rows are its columns).
     */
    void gemm(long d, long a, boolean transA, long b, boolean transB, int M, int N, int K, float alphaValue,
            float betaValue, int typeAB, int typeCD, Epilogue epilogue, long bias, long aux, long stream) {
        if (epilogue.bias != (bias != 0) || epilogue.aux != (aux != 0)) {
            throw new IllegalArgumentException("epilogue " + epilogue + " with bias " + bias + ", aux " + aux);
        }
        if (epilogue.aux && N % 8 != 0) {
            throw new IllegalArgumentException("epilogue " + epilogue + ": N " + N + " is not a multiple of 8");
        }
        Shape shape = new Shape(transA, transB, M, N, K, typeAB, typeCD, epilogue);
        Plan plan = plans.computeIfAbsent(shape, this::plan);
        if (plan == null) {
            throw new IllegalStateException("cuBLASLt has no algorithm for " + shape);
        }
        alpha.set(JAVA_FLOAT, 0, alphaValue);
        beta.set(JAVA_FLOAT, 0, betaValue);
        if (bias != 0) {
            setBiasPointer(plan.desc, bias);
        }
        if (aux != 0) {
            // Per call, as the bias: a plan is per shape, its aux matrix per layer (a graph capture keeps this one).
            setAuxPointer(plan.desc, aux);
        }
        MemorySegment dPtr = MemorySegment.ofAddress(d);
        // Column-major operands: first = op(B)ᵀ (N×K), second = op(A)ᵀ (K×M).
        int status;
        try {
            // invokeExact: the hot path of every dense GEMM, without invokeWithArguments' boxing and array.
            status = (int) matmul.invokeExact(handle, plan.desc, alpha, MemorySegment.ofAddress(b), plan.layoutB,
                    MemorySegment.ofAddress(a), plan.layoutA, beta, dPtr, plan.layoutD, dPtr, plan.layoutD, plan.algo,
                    MemorySegment.ofAddress(workspace), workspaceBytes, MemorySegment.ofAddress(stream));
        } catch (Throwable t) {
            throw new IllegalStateException("cuBLASLt call failed: " + t, t);
        }
        check("cublasLtMatmul", status);
    }

    /**
     * Whether cuBLASLt has an algorithm for this GEMM with {@code epilogue} (it lacks some epilogues for some types and
     * shapes): planned here when it has, so the answer is asked once per shape.
     */
    boolean offers(boolean transA, boolean transB, int M, int N, int K, int typeAB, int typeCD, Epilogue epilogue) {
        Shape shape = new Shape(transA, transB, M, N, K, typeAB, typeCD, epilogue);
        if (lacking.contains(shape)) {
            return false;
        }
        if (plans.computeIfAbsent(shape, this::plan) == null) {
            lacking.add(shape);
            return false;
        }
        return true;
    }

    /** The algorithm chosen per shape key so far, and those handed to {@link #reuse} not yet needed. */
    Map<String, String> choices() {
        return Map.copyOf(choices);
    }

    /**
     * Reuses recorded algorithms (the entries of {@code recorded} under this library's prefix) for shapes not planned
     * yet, instead of timing candidates.
     */
    void reuse(Map<String, String> recorded) {
        recorded.forEach((key, algo) -> {
            if (key.startsWith(CHOICE_PREFIX)) {
                decodeAlgo(key, algo);
                choices.putIfAbsent(key, algo);
            }
        });
    }

    /**
     * The shape's plan: its recorded algorithm, or every heuristic candidate timed on scratch operands (never live
     * data: beta may be 1) and the fastest kept; null when the heuristic offers none.
     */
    private Plan plan(Shape s) {
        MemorySegment out = arena.allocate(ADDRESS);
        check("cublasLtMatmulDescCreate", call(descCreate, out, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        MemorySegment desc = out.get(ADDRESS, 0);
        MemorySegment op = arena.allocate(JAVA_INT);
        // The column-major "A" is the row-major B side and vice versa.
        op.set(JAVA_INT, 0, s.transB() ? OP_T : OP_N);
        check("cublasLtMatmulDescSetAttribute(TRANSA)", call(descSetAttribute, desc, DESC_TRANSA, op, 4L));
        MemorySegment op2 = arena.allocate(JAVA_INT);
        op2.set(JAVA_INT, 0, s.transA() ? OP_T : OP_N);
        check("cublasLtMatmulDescSetAttribute(TRANSB)", call(descSetAttribute, desc, DESC_TRANSB, op2, 4L));
        if (s.epilogue() != Epilogue.NONE) {
            MemorySegment epilogue = arena.allocate(JAVA_INT);
            epilogue.set(JAVA_INT, 0, s.epilogue().value);
            check("cublasLtMatmulDescSetAttribute(EPILOGUE)", call(descSetAttribute, desc, DESC_EPILOGUE, epilogue,
                    4L));
        }
        // The heuristic reads only the pointers' alignment: the workspace's (256 bytes), as any tensor's.
        if (s.epilogue().bias) {
            setBiasPointer(desc, workspace);
        }
        if (s.epilogue().aux) {
            // The aux matrix has D's layout: column-major N×M (our row-major M×N), leading dimension N.
            MemorySegment ld = arena.allocate(JAVA_LONG);
            ld.set(JAVA_LONG, 0, s.n());
            check("cublasLtMatmulDescSetAttribute(EPILOGUE_AUX_LD)", call(descSetAttribute, desc,
                    DESC_EPILOGUE_AUX_LD, ld, 8L));
            setAuxPointer(desc, workspace);
        }
        int M = s.m(), N = s.n(), K = s.k();
        // Row-major B stored K×N is column-major N×K (ld N); stored N×K (transB) is column-major K×N (ld K).
        MemorySegment layoutB = layout(s.typeAB(), s.transB() ? K : N, s.transB() ? N : K, s.transB() ? K : N);
        // Row-major A stored M×K is column-major K×M (ld K); stored K×M (transA) is column-major M×K (ld M).
        MemorySegment layoutA = layout(s.typeAB(), s.transA() ? M : K, s.transA() ? K : M, s.transA() ? M : K);
        MemorySegment layoutD = layout(s.typeCD(), N, M, N);
        String recorded = choices.get(s.choiceKey());
        MemorySegment algo = recorded != null ? recordedAlgo(s, recorded, desc, layoutA, layoutB, layoutD)
                : searchedAlgo(s, desc, layoutA, layoutB, layoutD);
        return algo == null ? null : new Plan(desc, layoutA, layoutB, layoutD, algo);
    }

    /** The recorded algorithm, checked against this shape's descriptors and the workspace. */
    private MemorySegment recordedAlgo(Shape s, String recorded, MemorySegment desc, MemorySegment layoutA,
            MemorySegment layoutB, MemorySegment layoutD) {
        MemorySegment algo = arena.allocate(ALGO_BYTES, 16);
        algo.copyFrom(MemorySegment.ofArray(decodeAlgo(s.choiceKey(), recorded)));
        MemorySegment checked = arena.allocate(HEURISTIC_RESULT_BYTES, 16);
        int status = call(algoCheck, handle, desc, layoutB, layoutA, layoutD, layoutD, algo, checked);
        // cublasLtMatmulHeuristicResult_t: the algorithm, then the workspace it needs.
        long needs = checked.get(JAVA_LONG, ALGO_BYTES);
        if (status != 0 || needs > workspaceBytes) {
            throw new IllegalStateException("cuBLASLt " + version() + " refuses the recorded algorithm for "
                    + s.choiceKey() + " (cublasLtMatmulAlgoCheck returned cublasStatus " + status + ", workspace "
                    + needs + " of " + workspaceBytes + " bytes)");
        }
        return algo;
    }

    /**
     * The fastest heuristic candidate, recorded among the choices; null when there is none (the heuristic returns
     * CUBLAS_STATUS_NOT_SUPPORTED, or no result, for a configuration it lacks).
     */
    private MemorySegment searchedAlgo(Shape s, MemorySegment desc, MemorySegment layoutA, MemorySegment layoutB,
            MemorySegment layoutD) {
        MemorySegment results = arena.allocate(HEURISTIC_RESULT_BYTES * CANDIDATES, 16);
        MemorySegment count = arena.allocate(JAVA_INT);
        int status = call(heuristic, handle, desc, layoutB, layoutA, layoutD, layoutD, preference, CANDIDATES, results,
                count);
        int found = status == 0 ? count.get(JAVA_INT, 0) : 0;
        if (found < 1) {
            return null;
        }
        int best = 0;
        if (found > 1) {
            best = fastest(s, desc, layoutA, layoutB, layoutD, results, found);
        }
        MemorySegment algo = arena.allocate(ALGO_BYTES, 16);
        algo.copyFrom(results.asSlice(best * HEURISTIC_RESULT_BYTES, ALGO_BYTES));
        choices.put(s.choiceKey(), HexFormat.of().formatHex(algo.toArray(JAVA_BYTE)));
        return algo;
    }

    /** A recorded algorithm's bytes; a record that is not 64 bytes in hex is refused, naming the key. */
    private static byte[] decodeAlgo(String key, String hex) {
        if (hex.length() == 2 * ALGO_BYTES && hex.chars().allMatch(HexFormat::isHexDigit)) {
            return HexFormat.of().parseHex(hex);
        }
        throw new IllegalArgumentException("kernel choice '" + key + "': " + hex + " is not the " + ALGO_BYTES
                + " bytes of a cublasLtMatmulAlgo_t in hex");
    }

    private int fastest(Shape s, MemorySegment desc, MemorySegment layoutA, MemorySegment layoutB,
            MemorySegment layoutD, MemorySegment results, int found) {
        long elemAB = s.typeAB() == CUDA_R_16BF ? 2 : 4;
        long elemCD = s.typeCD() == CUDA_R_16BF ? 2 : 4;
        DevicePointer a = device.allocate(elemAB * s.m() * s.k());
        DevicePointer b = device.allocate(elemAB * s.k() * s.n());
        DevicePointer d = device.allocate(elemCD * s.m() * s.n());
        fill(a, s.typeAB(), (long) s.m() * s.k());
        fill(b, s.typeAB(), (long) s.k() * s.n());
        fill(d, s.typeCD(), (long) s.m() * s.n());
        // BGRADB writes M sums; the bias epilogues read N values.
        int biasLength = s.epilogue() == Epilogue.BGRADB ? s.m() : s.n();
        DevicePointer bias = s.epilogue().bias ? device.allocate(elemCD * biasLength) : null;
        if (bias != null) {
            fill(bias, s.typeCD(), biasLength);
            setBiasPointer(desc, bias.address());
        }
        DevicePointer aux = s.epilogue().aux ? device.allocate(elemCD * s.m() * s.n()) : null;
        if (aux != null) {
            fill(aux, s.typeCD(), (long) s.m() * s.n());
            setAuxPointer(desc, aux.address());
        }
        alpha.set(JAVA_FLOAT, 0, 1f);
        beta.set(JAVA_FLOAT, 0, s.epilogue().overwrites() ? 0f : 1f);
        int best = 0;
        float bestMs = Float.MAX_VALUE;
        for (int i = 0; i < found; i++) {
            MemorySegment algo = results.asSlice(i * HEURISTIC_RESULT_BYTES, ALGO_BYTES);
            MemorySegment dPtr = MemorySegment.ofAddress(d.address());
            Runnable run = () -> check("cublasLtMatmul (candidate)", call(matmul, handle, desc, alpha,
                    MemorySegment.ofAddress(b.address()), layoutB, MemorySegment.ofAddress(a.address()), layoutA,
                    beta, dPtr, layoutD, dPtr, layoutD, algo, MemorySegment.ofAddress(workspace), workspaceBytes,
                    MemorySegment.ofAddress(device.streamHandle())));
            float ms = device.eventMillis(run, 5);
            if (ms < bestMs) {
                bestMs = ms;
                best = i;
            }
        }
        device.synchronize();
        device.free(a);
        device.free(b);
        device.free(d);
        if (bias != null) {
            device.free(bias);
        }
        if (aux != null) {
            device.free(aux);
        }
        return best;
    }

    private void fill(DevicePointer p, int type, long count) {
        if (type == CUDA_R_16BF) {
            device.fillBf16(p, count, 0.01f);
        } else {
            device.fillF32(p, count, 0.01f);
        }
    }

    private void setBiasPointer(MemorySegment desc, long bias) {
        setPointer(desc, DESC_BIAS_POINTER, "BIAS_POINTER", biasPointer, bias);
    }

    private void setAuxPointer(MemorySegment desc, long aux) {
        setPointer(desc, DESC_EPILOGUE_AUX_POINTER, "EPILOGUE_AUX_POINTER", auxPointer, aux);
    }

    /** Sets a device-pointer attribute of the descriptor through {@code holder} (invokeExact: once per GEMM). */
    private void setPointer(MemorySegment desc, int attribute, String name, MemorySegment holder, long address) {
        holder.set(JAVA_LONG, 0, address);
        int status;
        try {
            status = (int) descSetAttribute.invokeExact(desc, attribute, holder, 8L);
        } catch (Throwable t) {
            throw new IllegalStateException("cuBLASLt call failed: " + t, t);
        }
        check("cublasLtMatmulDescSetAttribute(" + name + ")", status);
    }

    private MemorySegment layout(int type, long rows, long cols, long ld) {
        MemorySegment out = arena.allocate(ADDRESS);
        check("cublasLtMatrixLayoutCreate", call(layoutCreate, out, type, rows, cols, ld));
        return out.get(ADDRESS, 0);
    }

    private static MethodHandle bind(Linker linker, SymbolLookup lib, String name,
            java.lang.foreign.MemoryLayout... args) {
        MemorySegment symbol = lib.find(name).orElseThrow(() -> new IllegalStateException(
                "cuBLASLt has no symbol " + name));
        return linker.downcallHandle(symbol, FunctionDescriptor.of(JAVA_INT, args));
    }

    private static int call(MethodHandle h, Object... args) {
        try {
            return (int) h.invokeWithArguments(args);
        } catch (Throwable t) {
            throw new IllegalStateException("cuBLASLt call failed: " + t, t);
        }
    }

    private static void check(String what, int status) {
        if (status != 0) {
            throw new IllegalStateException(what + " returned cublasStatus " + status);
        }
    }

    @Override
    public void close() {
        check("cublasLtDestroy", call(destroy, handle));
        arena.close();
    }
}
