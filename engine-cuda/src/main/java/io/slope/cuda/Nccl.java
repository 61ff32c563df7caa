package io.slope.cuda;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_BYTE;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.slope.engine.backend.DType;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemoryLayout;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.StructLayout;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.util.List;

/**
 * NCCL (libnccl.so.2) through java.lang.foreign: only API present since NCCL 2.21, and none of the NVLink multicast
 * (NVLS) or symmetric-memory calls (the environment sets {@code NCCL_NVLS_ENABLE=0} as well; ADR 041). Signatures and
 * the {@code ncclConfig_t} layout are those of nccl.h 2.32.3.
 *
 * <p>Communicators are created non-blocking ({@code config.blocking = 0}): every call returns at once, possibly with
 * {@link #IN_PROGRESS}, and the caller polls {@link #asyncError} (see {@link NcclCollective}), so that no thread can
 * hang inside NCCL on a dead peer. Also binds the driver's {@code cuStreamQuery}, whose "not ready" JCuda would turn
 * into an exception.
 */
final class Nccl {
    static final int SUCCESS = 0;
    static final int IN_PROGRESS = 7;
    /** ncclDataType_t. */
    static final int INT32 = 2;
    static final int FLOAT32 = 7;
    static final int FLOAT64 = 8;
    static final int BFLOAT16 = 9;
    /** ncclRedOp_t. */
    static final int SUM = 0;
    static final int UNIQUE_ID_BYTES = 128;
    /** CUresult. */
    static final int CUDA_SUCCESS = 0;
    static final int CUDA_ERROR_NOT_READY = 600;

    /** {@code typedef struct { char internal[128]; } ncclUniqueId;}, passed by value to the init call. */
    static final StructLayout UNIQUE_ID = MemoryLayout.structLayout(MemoryLayout.sequenceLayout(UNIQUE_ID_BYTES,
            JAVA_BYTE).withName("internal"));

    private static final int API_MAGIC = 0xcafebeef;
    /** NCCL_VERSION(2, 32, 3): the header the layout below was read from. */
    private static final int CONFIG_VERSION = 23203;
    private static final int UNDEF_INT = Integer.MIN_VALUE;
    /** The int fields after {@code commName} in nccl.h 2.32.3, in order. */
    private static final List<String> CONFIG_TAIL = List.of("collnetEnable", "CTAPolicy", "shrinkShare", "nvlsCTAs",
            "nChannelsPerNetPeer", "nvlinkCentricSched", "graphUsageMode", "numRmaCtx", "maxP2pPeers",
            "graphStreamOrdering", "launchOrderImplicit", "numRmaSig", "rmaEagerInit", "hostCftMode", "nvlsHostMode");

    /**
     * {@code ncclConfig_v23100} as of nccl.h 2.32.3 (x86-64: 120 bytes). NCCL's parseCommConfig copies
     * min(config.size, its own sizeof) bytes and resets to defaults every field newer than {@code config.version}, so
     * an older library (2.21+) reads the prefix it knows and a newer one defaults what it added.
     */
    static final StructLayout CONFIG = config();

    private static StructLayout config() {
        List<MemoryLayout> fields = new java.util.ArrayList<>(List.of(JAVA_LONG.withName("size"),
                JAVA_INT.withName("magic"), JAVA_INT.withName("version"), JAVA_INT.withName("blocking"),
                JAVA_INT.withName("cgaClusterSize"), JAVA_INT.withName("minCTAs"), JAVA_INT.withName("maxCTAs"),
                ADDRESS.withName("netName"), JAVA_INT.withName("splitShare"), JAVA_INT.withName("trafficClass"),
                ADDRESS.withName("commName")));
        for (String name : CONFIG_TAIL) {
            fields.add(JAVA_INT.withName(name));
        }
        fields.add(MemoryLayout.paddingLayout(4)); // 116 bytes of fields, padded to the struct's 8-byte alignment
        return MemoryLayout.structLayout(fields.toArray(MemoryLayout[]::new));
    }

    private final Arena arena = Arena.ofShared();
    private final MethodHandle getVersion;
    private final MethodHandle getUniqueId;
    private final MethodHandle commInitRankConfig;
    private final MethodHandle commGetAsyncError;
    private final MethodHandle commFinalize;
    private final MethodHandle commDestroy;
    private final MethodHandle commAbort;
    private final MethodHandle allReduce;
    private final MethodHandle broadcast;
    private final MethodHandle groupStart;
    private final MethodHandle groupEnd;
    private final MethodHandle getErrorString;
    private final MethodHandle streamQuery;

    private static Nccl instance;

    /** The process's binding (loaded once). */
    static synchronized Nccl get() {
        if (instance == null) {
            instance = new Nccl();
        }
        return instance;
    }

    static final List<String> LIBRARY = List.of("libnccl.so.2", "libnccl.so");

    private Nccl() {
        Linker linker = Linker.nativeLinker();
        disableNvls(linker);
        SymbolLookup lib = NativeLibraries.load("NCCL", LIBRARY, arena);
        getVersion = bind(linker, lib, "ncclGetVersion", ADDRESS);
        getUniqueId = bind(linker, lib, "ncclGetUniqueId", ADDRESS);
        commInitRankConfig = bind(linker, lib, "ncclCommInitRankConfig", ADDRESS, JAVA_INT, UNIQUE_ID, JAVA_INT,
                ADDRESS);
        commGetAsyncError = bind(linker, lib, "ncclCommGetAsyncError", ADDRESS, ADDRESS);
        commFinalize = bind(linker, lib, "ncclCommFinalize", ADDRESS);
        commDestroy = bind(linker, lib, "ncclCommDestroy", ADDRESS);
        commAbort = bind(linker, lib, "ncclCommAbort", ADDRESS);
        allReduce = bind(linker, lib, "ncclAllReduce", ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS,
                ADDRESS);
        broadcast = bind(linker, lib, "ncclBroadcast", ADDRESS, ADDRESS, JAVA_LONG, JAVA_INT, JAVA_INT, ADDRESS,
                ADDRESS);
        groupStart = bind(linker, lib, "ncclGroupStart");
        groupEnd = bind(linker, lib, "ncclGroupEnd");
        getErrorString = linker.downcallHandle(symbol(lib, "ncclGetErrorString"), FunctionDescriptor.of(ADDRESS,
                JAVA_INT));
        SymbolLookup driver = driver(arena);
        streamQuery = linker.downcallHandle(driver.find("cuStreamQuery").orElseThrow(() -> new IllegalStateException(
                "libcuda.so.1 has no symbol cuStreamQuery")), FunctionDescriptor.of(JAVA_INT, ADDRESS));
    }

    /**
     * Sets {@code NCCL_NVLS_ENABLE=0} in this process's environment before NCCL first reads it, whatever the launcher
     * set: NVLink multicast on a shared host can take its GPUs out of service (ADR 041). A data-parallel gradient
     * reduce of this size gains little from it.
     */
    private void disableNvls(Linker linker) {
        MethodHandle setenv = linker.downcallHandle(linker.defaultLookup().find("setenv").orElseThrow(
                () -> new IllegalStateException("libc has no setenv")), FunctionDescriptor.of(JAVA_INT, ADDRESS,
                        ADDRESS, JAVA_INT));
        try {
            int rc = (int) setenv.invokeExact(arena.allocateFrom("NCCL_NVLS_ENABLE"), arena.allocateFrom("0"), 1);
            if (rc != 0) {
                throw new IllegalStateException("setenv(NCCL_NVLS_ENABLE=0) failed");
            }
        } catch (Throwable t) {
            throw new IllegalStateException("cannot disable NVLink multicast before loading NCCL: " + t, t);
        }
    }

    /** libcuda.so.1 as the dynamic linker finds it (JCuda already linked it), else from the usual driver folders. */
    private static SymbolLookup driver(Arena arena) {
        try {
            return SymbolLookup.libraryLookup("libcuda.so.1", arena);
        } catch (IllegalArgumentException notOnTheLinkerPath) {
            for (String dir : CudaBackendProvider.DRIVER_DIRS) {
                java.nio.file.Path p = java.nio.file.Path.of(dir, "libcuda.so.1");
                if (java.nio.file.Files.isRegularFile(p)) {
                    return SymbolLookup.libraryLookup(p, arena);
                }
            }
            throw new IllegalStateException("libcuda.so.1 not found on the linker path nor in "
                    + CudaBackendProvider.DRIVER_DIRS, notOnTheLinkerPath);
        }
    }

    /** The library's NCCL_VERSION_CODE, e.g. 22703 for 2.27.3. */
    int version() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment v = a.allocate(JAVA_INT);
            check("ncclGetVersion", call(getVersion, v));
            return v.get(JAVA_INT, 0);
        }
    }

    /** A fresh unique id (rank 0): 128 bytes that every rank passes to {@link #commInitRank}. */
    byte[] uniqueId() {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment id = a.allocate(UNIQUE_ID);
            check("ncclGetUniqueId", call(getUniqueId, id));
            return id.toArray(JAVA_BYTE);
        }
    }

    /**
     * Starts creating this rank's non-blocking communicator on the CUDA device current on the calling thread; returns
     * the handle at once (NCCL sets it before answering {@link #IN_PROGRESS}); the caller polls {@link #asyncError}.
     */
    MemorySegment commInitRank(int worldSize, byte[] uniqueId, int rank) {
        if (uniqueId.length != UNIQUE_ID_BYTES) {
            throw new IllegalArgumentException("an NCCL unique id has " + UNIQUE_ID_BYTES + " bytes, not "
                    + uniqueId.length);
        }
        try (Arena a = Arena.ofConfined()) {
            MemorySegment id = a.allocate(UNIQUE_ID);
            id.copyFrom(MemorySegment.ofArray(uniqueId));
            MemorySegment config = a.allocate(CONFIG);
            config.set(JAVA_LONG, CONFIG.byteOffset(MemoryLayout.PathElement.groupElement("size")), CONFIG.byteSize());
            setInt(config, "magic", API_MAGIC);
            setInt(config, "version", CONFIG_VERSION);
            setInt(config, "blocking", 0);
            for (String name : List.of("cgaClusterSize", "minCTAs", "maxCTAs", "splitShare", "trafficClass")) {
                setInt(config, name, UNDEF_INT);
            }
            for (String name : CONFIG_TAIL) {
                setInt(config, name, UNDEF_INT);
            }
            config.set(ADDRESS, CONFIG.byteOffset(MemoryLayout.PathElement.groupElement("netName")),
                    MemorySegment.NULL);
            config.set(ADDRESS, CONFIG.byteOffset(MemoryLayout.PathElement.groupElement("commName")),
                    MemorySegment.NULL);
            MemorySegment comm = a.allocate(ADDRESS);
            comm.set(ADDRESS, 0, MemorySegment.NULL);
            int status = call(commInitRankConfig, comm, worldSize, id, rank, config);
            MemorySegment handle = comm.get(ADDRESS, 0);
            if (status != SUCCESS && status != IN_PROGRESS) {
                if (!handle.equals(MemorySegment.NULL)) {
                    call(commAbort, handle); // free what the failed init left; its status is secondary
                }
                check("ncclCommInitRankConfig(rank " + rank + " of " + worldSize + ")", status);
            }
            if (handle.equals(MemorySegment.NULL)) {
                throw new IllegalStateException("ncclCommInitRankConfig returned " + describe(status)
                        + " without a communicator");
            }
            return handle;
        }
    }

    private static void setInt(MemorySegment config, String field, int value) {
        config.set(JAVA_INT, CONFIG.byteOffset(MemoryLayout.PathElement.groupElement(field)), value);
    }

    /** The communicator's state: {@link #SUCCESS}, {@link #IN_PROGRESS} or the error that broke it. */
    int asyncError(MemorySegment comm) {
        try (Arena a = Arena.ofConfined()) {
            MemorySegment r = a.allocate(JAVA_INT);
            check("ncclCommGetAsyncError", call(commGetAsyncError, comm, r));
            return r.get(JAVA_INT, 0);
        }
    }

    int allReduceSum(long send, long recv, long count, int datatype, MemorySegment comm, long stream) {
        return call(allReduce, MemorySegment.ofAddress(send), MemorySegment.ofAddress(recv), count, datatype, SUM,
                comm, MemorySegment.ofAddress(stream));
    }

    int broadcast(long send, long recv, long count, int datatype, int root, MemorySegment comm, long stream) {
        return call(broadcast, MemorySegment.ofAddress(send), MemorySegment.ofAddress(recv), count, datatype, root,
                comm, MemorySegment.ofAddress(stream));
    }

    int groupStart() {
        return call(groupStart);
    }

    int groupEnd() {
        return call(groupEnd);
    }

    int finalizeComm(MemorySegment comm) {
        return call(commFinalize, comm);
    }

    int destroy(MemorySegment comm) {
        return call(commDestroy, comm);
    }

    int abort(MemorySegment comm) {
        return call(commAbort, comm);
    }

    /** The driver's cuStreamQuery: {@link #CUDA_SUCCESS} when done, {@link #CUDA_ERROR_NOT_READY} while running. */
    int streamQuery(long stream) {
        try {
            return (int) streamQuery.invokeExact(MemorySegment.ofAddress(stream));
        } catch (Throwable t) {
            throw new IllegalStateException("cuStreamQuery call failed: " + t, t);
        }
    }

    /** "ncclInvalidUsage (5): invalid usage" style text for a status. */
    String describe(int status) {
        String text;
        try {
            MemorySegment s = (MemorySegment) getErrorString.invokeExact(status);
            text = s.equals(MemorySegment.NULL) ? "?" : s.reinterpret(1024).getString(0);
        } catch (Throwable t) {
            text = "ncclGetErrorString failed: " + t;
        }
        return "ncclResult " + status + " (" + text + ")";
    }

    /** Throws naming the call and NCCL's text unless {@code status} is success. */
    void check(String what, int status) {
        if (status != SUCCESS) {
            throw new IllegalStateException(what + " returned " + describe(status));
        }
    }

    /** True for success and in-progress (a non-blocking call accepted); throws naming the call otherwise. */
    void checkAccepted(String what, int status) {
        if (status != SUCCESS && status != IN_PROGRESS) {
            check(what, status);
        }
    }

    private static MemorySegment symbol(SymbolLookup lib, String name) {
        return lib.find(name).orElseThrow(() -> new IllegalStateException("NCCL has no symbol " + name
                + " (NCCL 2.21 or later is needed)"));
    }

    private static MethodHandle bind(Linker linker, SymbolLookup lib, String name, MemoryLayout... args) {
        return linker.downcallHandle(symbol(lib, name), FunctionDescriptor.of(JAVA_INT, args));
    }

    private static int call(MethodHandle h, Object... args) {
        try {
            return (int) h.invokeWithArguments(args);
        } catch (Throwable t) {
            throw new IllegalStateException("NCCL call failed: " + t, t);
        }
    }

    /** The NCCL type of a tensor's storage. */
    static int dataType(DType dtype) {
        return switch (dtype) {
            case F32 -> FLOAT32;
            case BF16 -> BFLOAT16;
            case F64 -> FLOAT64;
            case I32 -> INT32;
        };
    }
}
