package io.slope.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.util.List;

/**
 * Causal attention through cuDNN's fused SDPA (flash attention) forward and backward (ADR 008): the shim
 * {@code slope_cudnn.cpp}, built at build time against cudnn-frontend's headers and carried in this jar, loads cuDNN
 * and the CUDA runtime found at run time like cuSPARSELt. Q, K and V are read in place from the qkv rows; the forward
 * keeps the per-(b, h, t) log-sum-exp for the backward; the backward writes dqkv. Graphs are built once per shape.
 */
final class CudnnAttention implements AutoCloseable {
    static final String SHIM_RESOURCE = "/io/slope/cuda/linux-x86_64/libslope_cudnn.so";
    static final List<String> CUDNN_FILES = List.of("libcudnn.so.9", "libcudnn.so");
    static final List<String> CUDART_FILES = List.of("libcudart.so.13", "libcudart.so");

    private static Path extractedShim;

    private final Arena arena = Arena.ofShared();
    private final CudaDevice device;
    private final MemorySegment context;
    private final MethodHandle lastError;
    private final MethodHandle destroy;
    private final MethodHandle deterministic;
    private final MethodHandle workspaceSize;
    private final MethodHandle forward;
    private final MethodHandle backward;
    private final long version;
    private DevicePointer workspace;
    private long workspaceBytes;

    private CudnnAttention(CudaDevice device, Path shim, Path cudart, Path cudnn) {
        this.device = device;
        SymbolLookup lib = SymbolLookup.libraryLookup(shim, arena);
        Linker linker = Linker.nativeLinker();
        lastError = linker.downcallHandle(symbol(lib, "slope_cudnn_last_error"), FunctionDescriptor.of(ADDRESS));
        MethodHandle open = bind(linker, lib, "slope_cudnn_open", JAVA_LONG, ADDRESS, ADDRESS);
        MethodHandle create = bind(linker, lib, "slope_cudnn_create", ADDRESS, ADDRESS);
        destroy = linker.downcallHandle(symbol(lib, "slope_cudnn_destroy"), FunctionDescriptor.ofVoid(ADDRESS));
        deterministic = bind(linker, lib, "slope_cudnn_deterministic", JAVA_INT, ADDRESS);
        workspaceSize = bind(linker, lib, "slope_cudnn_attention_workspace", JAVA_LONG, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_FLOAT, JAVA_INT);
        forward = bind(linker, lib, "slope_cudnn_attention_forward", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG);
        backward = bind(linker, lib, "slope_cudnn_attention_backward", JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT,
                JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, ADDRESS, JAVA_LONG);
        this.version = (long) call(open, arena.allocateFrom(cudart.toString()), arena.allocateFrom(cudnn.toString()));
        if (version < 0) {
            throw new IllegalStateException(error());
        }
        MemorySegment c = (MemorySegment) call(create, MemorySegment.ofAddress(device.streamHandle()));
        if (c.address() == 0) {
            throw new IllegalStateException(error());
        }
        this.context = c;
    }

    /**
     * cuDNN attention on this device's stream, or the reason it cannot be had: no shim in this jar (built without
     * the headers), no cuDNN or CUDA runtime found (naming every place searched), or cuDNN refusing to start.
     */
    static CudnnAttention open(CudaDevice device) {
        if (CudnnAttention.class.getResource(SHIM_RESOURCE) == null) {
            throw new IllegalStateException("this slope-engine-cuda jar holds no cuDNN shim (" + SHIM_RESOURCE
                    + "): it was built without cudnn-frontend's headers. Install them with ./slope tools and rebuild");
        }
        Path cudnn = NativeLibraries.find(CUDNN_FILES).orElseThrow(() -> new IllegalStateException(
                NativeLibraries.missing("cuDNN 9", CUDNN_FILES)));
        Path cudart = NativeLibraries.find(CUDART_FILES).orElseThrow(() -> new IllegalStateException(
                NativeLibraries.missing("the CUDA 13 runtime", CUDART_FILES)));
        return new CudnnAttention(device, shim(), cudart, cudnn);
    }

    /** cuDNN's version, e.g. 91500 for 9.15.0. */
    long version() {
        return version;
    }

    /** Whether the backward graphs are cuDNN's deterministic ones (known once a backward ran). */
    boolean deterministic() {
        return (int) call(deterministic, context) != 0;
    }

    /** out and stats (log-sum-exp, fp32 [B][heads][T]) from the bf16 qkv rows. */
    void forward(long out, long stats, long qkv, int B, int T, int heads, int headSize, float scale) {
        long ws = workspace(B, T, heads, headSize, scale, false);
        check("attention forward", (int) call(forward, context, B, T, heads, headSize, scale, address(qkv),
                address(out), address(stats), address(ws), workspaceBytes));
    }

    /** dqkv (overwritten) from the forward's qkv, output and stats and the output's gradient dout. */
    void backward(long dqkv, long dout, long qkv, long out, long stats, int B, int T, int heads, int headSize,
            float scale) {
        long ws = workspace(B, T, heads, headSize, scale, true);
        check("attention backward", (int) call(backward, context, B, T, heads, headSize, scale, address(qkv),
                address(out), address(dout), address(stats), address(dqkv), address(ws), workspaceBytes));
    }

    /** The shared workspace, grown (after the stream drains) when a graph needs more. */
    private long workspace(int B, int T, int heads, int headSize, float scale, boolean isBackward) {
        long needed = (long) call(workspaceSize, context, B, T, heads, headSize, scale, isBackward ? 1 : 0);
        if (needed < 0) {
            throw new IllegalStateException(error());
        }
        if (needed > workspaceBytes || workspace == null) {
            if (workspace != null) {
                device.synchronize();
                device.free(workspace);
                // Forgotten before the new allocation, which may fail: a freed buffer must never be handed out.
                workspace = null;
            }
            long bytes = Math.max(needed, 1);
            workspace = device.allocate(bytes);
            workspaceBytes = bytes;
        }
        return workspace.address();
    }

    private void check(String what, int status) {
        if (status != 0) {
            throw new IllegalStateException("cuDNN " + what + ": " + error());
        }
    }

    private String error() {
        MemorySegment s = (MemorySegment) call(lastError);
        return s.reinterpret(Long.MAX_VALUE).getString(0);
    }

    /** The shim copied out of the jar once per JVM (a shared library must be a file to be loaded). */
    private static synchronized Path shim() {
        if (extractedShim == null) {
            try (InputStream in = CudnnAttention.class.getResourceAsStream(SHIM_RESOURCE)) {
                Path dir = Files.createTempDirectory("slope-cudnn");
                Path file = dir.resolve("libslope_cudnn.so");
                Files.copy(in, file, StandardCopyOption.REPLACE_EXISTING);
                file.toFile().deleteOnExit();
                dir.toFile().deleteOnExit();
                extractedShim = file;
            } catch (IOException e) {
                throw new IllegalStateException("cannot extract the cuDNN shim: " + e.getMessage(), e);
            }
        }
        return extractedShim;
    }

    private static MemorySegment address(long a) {
        return MemorySegment.ofAddress(a);
    }

    private static MemorySegment symbol(SymbolLookup lib, String name) {
        return lib.find(name).orElseThrow(() -> new IllegalStateException("the cuDNN shim has no symbol " + name));
    }

    private static MethodHandle bind(Linker linker, SymbolLookup lib, String name, MemoryLayout result,
            MemoryLayout... args) {
        return linker.downcallHandle(symbol(lib, name), FunctionDescriptor.of(result, args));
    }

    private static Object call(MethodHandle h, Object... args) {
        try {
            return h.invokeWithArguments(args);
        } catch (Throwable t) {
            throw new IllegalStateException("cuDNN shim call failed: " + t, t);
        }
    }

    @Override
    public void close() {
        call(destroy, context);
        if (workspace != null) {
            device.free(workspace);
        }
        arena.close();
    }
}
