package io.slope.cuda;

import static jcuda.driver.JCudaDriver.cuCtxSetCurrent;
import static jcuda.driver.JCudaDriver.cuDeviceGet;
import static jcuda.driver.JCudaDriver.cuDeviceGetAttribute;
import static jcuda.driver.JCudaDriver.cuDeviceGetCount;
import static jcuda.driver.JCudaDriver.cuDeviceGetName;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRelease;
import static jcuda.driver.JCudaDriver.cuDevicePrimaryCtxRetain;
import static jcuda.driver.JCudaDriver.cuDriverGetVersion;
import static jcuda.driver.JCudaDriver.cuFuncGetAttribute;
import static jcuda.driver.JCudaDriver.cuFuncSetAttribute;
import static jcuda.driver.JCudaDriver.cuInit;
import static jcuda.driver.JCudaDriver.cuMemAlloc;
import static jcuda.driver.JCudaDriver.cuMemFree;
import static jcuda.driver.JCudaDriver.cuMemGetInfo;
import static jcuda.driver.JCudaDriver.cuMemcpyDtoH;
import static jcuda.driver.JCudaDriver.cuMemcpyHtoD;
import static jcuda.driver.JCudaDriver.cuMemsetD8Async;
import static jcuda.driver.JCudaDriver.cuModuleGetFunction;
import static jcuda.driver.JCudaDriver.cuModuleLoadData;
import static jcuda.driver.JCudaDriver.cuModuleUnload;
import static jcuda.driver.JCudaDriver.cuOccupancyMaxActiveBlocksPerMultiprocessor;
import static jcuda.driver.JCudaDriver.cuStreamCreate;
import static jcuda.driver.JCudaDriver.cuStreamDestroy;
import static jcuda.driver.JCudaDriver.cuStreamSynchronize;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_DOUBLE;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;
import static java.lang.foreign.ValueLayout.JAVA_LONG;

import io.slope.engine.backend.OutOfDeviceMemory;
import java.io.IOException;
import java.io.InputStream;
import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import jcuda.CudaException;
import jcuda.Pointer;
import jcuda.driver.CUcontext;
import jcuda.driver.CUdevice;
import jcuda.driver.CUdevice_attribute;
import jcuda.driver.CUdeviceptr;
import jcuda.driver.CUfunction;
import jcuda.driver.CUfunction_attribute;
import jcuda.driver.CUgraph;
import jcuda.driver.CUgraphExec;
import jcuda.driver.CUmodule;
import jcuda.driver.CUresult;
import jcuda.driver.CUstream;
import jcuda.driver.JCudaDriver;

/**
 * One GPU through JCuda's driver API: the primary context, one stream every operation is queued on, the project's
 * kernel module, memory and launches. Every driver call's result is checked (JCuda throws on any error code).
 */
final class CudaDevice implements AutoCloseable {
    static final String KERNEL_RESOURCE = "/io/slope/cuda/slope_kernels.fatbin";
    /** JCuda's exception message for the driver's out-of-memory result (it carries only the result's name). */
    private static final String OUT_OF_MEMORY = CUresult.stringFor(CUresult.CUDA_ERROR_OUT_OF_MEMORY);

    /** A stream whose native handle can be passed to cuBLASLt and cuSPARSELt. */
    static final class Stream extends CUstream {
        long handle() {
            return getNativePointer();
        }
    }

    /**
     * Pinned host memory a queued upload copies from, and the event after that copy: the buffer is written again only
     * once the event has passed.
     */
    private static final class Staging {
        final jcuda.driver.CUevent copied = new jcuda.driver.CUevent();
        Pointer host;
        ByteBuffer buffer;
        boolean pending;

        Staging() {
            jcuda.driver.JCudaDriver.cuEventCreate(copied, jcuda.driver.CUevent_flags.CU_EVENT_DISABLE_TIMING);
        }

        /** Waits for the last copy from this buffer, then makes room for {@code bytes}. */
        ByteBuffer take(long bytes) {
            if (pending) {
                jcuda.driver.JCudaDriver.cuEventSynchronize(copied);
                pending = false;
            }
            if (buffer == null || buffer.capacity() < bytes) {
                free();
                host = new Pointer();
                long capacity = Math.max(bytes, 64 * 1024);
                jcuda.driver.JCudaDriver.cuMemHostAlloc(host, capacity, 0);
                buffer = host.getByteBuffer(0, capacity).order(ByteOrder.nativeOrder());
            }
            return buffer.clear();
        }

        void free() {
            if (host != null) {
                jcuda.driver.JCudaDriver.cuMemFreeHost(host);
                host = null;
                buffer = null;
            }
        }
    }

    /** Queued uploads' staging buffers, used in turn: a micro-batch's (ids and their buckets, twice) fit several times. */
    private final Staging[] staging = new Staging[32];
    private int nextStaging;

    private final CUdevice device = new CUdevice();
    private final CUcontext context = new CUcontext();
    private final Stream stream = new Stream();
    private final CUmodule module = new CUmodule();
    private final Map<String, Function> functions = new HashMap<>();
    private final KernelLauncher launcher;
    /**
     * SLOPE_CUDA_PROFILE (benchmarks only): {@code 1} synchronises around every launch and library call and times it
     * by name, so small operations carry the synchronisation; {@code events} brackets each with CUDA events instead and
     * synchronises nowhere, so the step runs as it does unprofiled: each operation's GPU time, and the time the GPU
     * waited between operations (the host's share of the step) as an entry of its own, {@link #IDLE}. Both run the
     * repeated passes eagerly, operation by operation; {@code replays} times each replay of a recorded pass as one
     * operation instead, so its idle entry is the host's share of the step as users run it (ADR 044).
     */
    private final String profileMode = System.getenv().getOrDefault("SLOPE_CUDA_PROFILE", "");
    private final boolean timesReplays = profileMode.equals("replays");
    private final boolean eventProfiling = profileMode.equals("events") || timesReplays;
    private final boolean profiling = profileMode.equals("1") || eventProfiling;
    static final String IDLE = "(GPU idle between operations)";
    /**
     * Host entries of the profile, not GPU time: {@link #HOST_OPERATIONS} counts the operations queued (its time is
     * 0), {@link #HOST_WAIT} the synchronisations and the time the host spent in them. The step's wall time less the
     * waiting is the host's own work, which the GPU's idle time shows when the host falls behind.
     */
    static final String HOST_OPERATIONS = "(host) operations queued";
    static final String HOST_WAIT = "(host) waiting for the GPU";
    private final Map<String, long[]> profile = new java.util.TreeMap<>();
    /** Events mode: the pool (reused after each read of the profile), and the operation of each recorded pair. */
    private final List<jcuda.driver.CUevent> events = new ArrayList<>();
    private final List<String> eventOperations = new ArrayList<>();
    private boolean capturing;
    /** Counts allocations, frees and uploads of weights: a recorded pass is only replayed within one generation. */
    private long generation;
    private final String name;
    private final int computeCapability;
    private final int driverVersion;
    private final int multiprocessors;
    private final int sharedPerBlockOptIn;

    CudaDevice(int ordinal) {
        byte[] image = kernelImage();
        JCudaDriver.setExceptionsEnabled(true);
        cuInit(0);
        int[] count = new int[1];
        cuDeviceGetCount(count);
        if (ordinal >= count[0]) {
            throw new IllegalStateException("CUDA device " + ordinal + " requested, " + count[0] + " present");
        }
        cuDeviceGet(device, ordinal);
        cuDevicePrimaryCtxRetain(context, device);
        cuCtxSetCurrent(context);
        // Flags 0: a blocking stream, so the synchronous copies of download() order after its work.
        cuStreamCreate(stream, 0);
        cuModuleLoadData(module, image);
        launcher = new KernelLauncher();
        byte[] nameBytes = new byte[256];
        cuDeviceGetName(nameBytes, nameBytes.length, device);
        this.name = new String(nameBytes).trim().replace("\0", "");
        this.computeCapability = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR) * 10
                + attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
        this.multiprocessors = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
        this.sharedPerBlockOptIn = attribute(CUdevice_attribute.CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN);
        int[] v = new int[1];
        cuDriverGetVersion(v);
        this.driverVersion = v[0];
    }

    /** The fatbin built by nvcc at build time; a jar built without nvcc has none, and the backend cannot start. */
    static byte[] kernelImage() {
        try (InputStream in = CudaDevice.class.getResourceAsStream(KERNEL_RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException(missingKernelsMessage());
            }
            return in.readAllBytes();
        } catch (IOException e) {
            throw new IllegalStateException("cannot read " + KERNEL_RESOURCE + ": " + e.getMessage(), e);
        }
    }

    static boolean hasKernelImage() {
        return CudaDevice.class.getResource(KERNEL_RESOURCE) != null;
    }

    static String missingKernelsMessage() {
        return "this slope-engine-cuda jar holds no CUDA kernels (" + KERNEL_RESOURCE + "): it was built without"
                + " nvcc. Install nvcc (./slope tools, or PyPI nvidia-cuda-nvcc into .tools/cuda) and rebuild";
    }

    String name() {
        return name;
    }

    int computeCapability() {
        return computeCapability;
    }

    int driverVersion() {
        return driverVersion;
    }

    int multiprocessors() {
        return multiprocessors;
    }

    long streamHandle() {
        return stream.handle();
    }

    private int attribute(int attr) {
        int[] v = new int[1];
        cuDeviceGetAttribute(v, attr, device);
        return v[0];
    }

    long[] memoryInfo() {
        long[] free = new long[1];
        long[] total = new long[1];
        cuMemGetInfo(free, total);
        return new long[] {free[0], total[0]};
    }

    /**
     * cuMemAlloc. The driver's CUDA_ERROR_OUT_OF_MEMORY becomes {@link OutOfDeviceMemory} with the memory free at that
     * moment, so the trainer can run the micro-batch in smaller passes; every other error stays JCuda's.
     */
    DevicePointer allocate(long bytes) {
        refuseWhileRecording("an allocation of " + bytes + " bytes");
        generation++;
        DevicePointer p = new DevicePointer();
        long size = Math.max(bytes, 16);
        try {
            cuMemAlloc(p, size);
        } catch (CudaException e) {
            if (OUT_OF_MEMORY.equals(e.getMessage())) {
                throw new OutOfDeviceMemory(size, memoryInfo()[0]);
            }
            throw e;
        }
        return p;
    }

    void free(DevicePointer p) {
        refuseWhileRecording("a free");
        generation++;
        cuMemFree(p);
    }

    void memsetZero(CUdeviceptr p, long bytes) {
        timed("memset zero", () -> cuMemsetD8Async(p, (byte) 0, bytes, stream));
    }

    /** Fills {@code count} bf16 elements with one value (search and benchmark inputs that are not zeros). */
    void fillBf16(DevicePointer p, long count, float value) {
        jcuda.driver.JCudaDriver.cuMemsetD16Async(p, (short) (Float.floatToRawIntBits(value) >>> 16), count, stream);
    }

    /** Fills {@code count} 32-bit words with a float's bits. */
    void fillF32(DevicePointer p, long count, float value) {
        jcuda.driver.JCudaDriver.cuMemsetD32Async(p, Float.floatToRawIntBits(value), count, stream);
    }

    /**
     * Records what {@code work} queues on the stream into a CUDA Graph, ready to launch; nothing of it runs now. Work
     * that synchronises, copies or allocates cannot be recorded: it fails here, naming the call.
     */
    CUgraphExec record(Runnable work) {
        jcuda.driver.JCudaDriver.cuStreamBeginCapture(stream,
                jcuda.driver.CUstreamCaptureMode.CU_STREAM_CAPTURE_MODE_THREAD_LOCAL);
        capturing = true;
        CUgraph graph = new CUgraph();
        try {
            work.run();
        } finally {
            capturing = false;
            jcuda.driver.JCudaDriver.cuStreamEndCapture(stream, graph);
        }
        CUgraphExec exec = new CUgraphExec();
        jcuda.driver.JCudaDriver.cuGraphInstantiate(exec, graph, 0);
        jcuda.driver.JCudaDriver.cuGraphDestroy(graph);
        return exec;
    }

    void launch(CUgraphExec exec) {
        jcuda.driver.JCudaDriver.cuGraphLaunch(exec, stream);
    }

    void destroy(CUgraphExec exec) {
        jcuda.driver.JCudaDriver.cuGraphExecDestroy(exec);
    }

    long generation() {
        return generation;
    }

    /** A weight was written by the host: passes recorded before may hold a stale view of its low-precision copy. */
    void weightsChanged() {
        generation++;
    }

    /** Whether {@link #record} is recording: operations then must not depend on what the current call uploaded. */
    boolean capturing() {
        return capturing;
    }

    private void refuseWhileRecording(String what) {
        if (capturing) {
            throw new IllegalStateException(what + " while recording a CUDA Graph: the repeated pass must only queue "
                    + "device work (SLOPE_CUDA_GRAPHS=0 runs it eagerly)");
        }
    }

    void copyToDevice(DevicePointer dst, Pointer src, long bytes) {
        synchronize();
        cuMemcpyHtoD(dst, src, bytes);
    }

    /**
     * Queues a copy of {@code src[0, count)} to {@code dst} behind the work already queued, from pinned staging memory,
     * and returns without waiting: a micro-batch's ids go up while the GPU still runs the last one, so it never idles
     * on the host's uploads (the kernels queued after it read the new ids, in stream order).
     */
    void copyToDeviceQueued(DevicePointer dst, int[] src, int count) {
        refuseWhileRecording("an upload");
        if (staging[nextStaging] == null) {
            staging[nextStaging] = new Staging();
        }
        Staging s = staging[nextStaging];
        nextStaging = (nextStaging + 1) % staging.length;
        long bytes = 4L * count;
        s.take(bytes).asIntBuffer().put(src, 0, count);
        jcuda.driver.JCudaDriver.cuMemcpyHtoDAsync(dst, s.host, bytes, stream);
        jcuda.driver.JCudaDriver.cuEventRecord(s.copied, stream);
        s.pending = true;
    }

    void copyToHost(Pointer dst, DevicePointer src, long bytes) {
        synchronize();
        cuMemcpyDtoH(dst, src, bytes);
    }

    void synchronize() {
        refuseWhileRecording("a synchronisation");
        if (!profiling) {
            cuStreamSynchronize(stream);
            return;
        }
        long start = System.nanoTime();
        cuStreamSynchronize(stream);
        addToProfile(HOST_WAIT, System.nanoTime() - start);
    }

    /** Runs {@code work} (queued device work); when profiling, synchronises around it and adds its time to {@code what}. */
    void timed(String what, Runnable work) {
        // A pass being recorded is timed by its replays.
        if (!profiling || capturing) {
            work.run();
            return;
        }
        addToProfile(HOST_OPERATIONS, 0);
        if (eventProfiling) {
            // The pair is taken before the work runs, so an operation timed inside it gets a pair of its own.
            int pair = eventOperations.size();
            eventOperations.add(what);
            jcuda.driver.JCudaDriver.cuEventRecord(event(2 * pair), stream);
            work.run();
            jcuda.driver.JCudaDriver.cuEventRecord(event(2 * pair + 1), stream);
            return;
        }
        synchronize();
        long start = System.nanoTime();
        work.run();
        synchronize();
        addToProfile(what, System.nanoTime() - start);
    }

    private void addToProfile(String what, long nanos) {
        long[] acc = profile.computeIfAbsent(what, k -> new long[2]);
        acc[0]++;
        acc[1] += nanos;
    }

    private jcuda.driver.CUevent event(int index) {
        while (events.size() <= index) {
            jcuda.driver.CUevent e = new jcuda.driver.CUevent();
            jcuda.driver.JCudaDriver.cuEventCreate(e, 0);
            events.add(e);
        }
        return events.get(index);
    }

    /**
     * Events mode: waits for the recorded operations and adds each one's GPU time to the profile, and the gaps between
     * one operation's end and the next one's start to {@link #IDLE}; the pool is then free again.
     */
    private void collectEvents() {
        cuStreamSynchronize(stream);
        float[] ms = new float[1];
        long idle = 0;
        for (int i = 0; i < eventOperations.size(); i++) {
            jcuda.driver.JCudaDriver.cuEventElapsedTime(ms, events.get(2 * i), events.get(2 * i + 1));
            addToProfile(eventOperations.get(i), Math.round(ms[0] * 1e6));
            if (i > 0) {
                jcuda.driver.JCudaDriver.cuEventElapsedTime(ms, events.get(2 * i - 1), events.get(2 * i));
                idle += Math.max(0, Math.round(ms[0] * 1e6));
            }
        }
        if (!eventOperations.isEmpty()) {
            profile.computeIfAbsent(IDLE, k -> new long[2])[1] += idle;
        }
        eventOperations.clear();
    }

    /** Brackets the work Nsight Compute profiles when started with {@code --profile-from-start off}. */
    void profilerRange(boolean start) {
        synchronize();
        if (start) {
            jcuda.driver.JCudaDriver.cuProfilerStart();
        } else {
            jcuda.driver.JCudaDriver.cuProfilerStop();
        }
    }

    boolean profiling() {
        return profiling;
    }

    /** SLOPE_CUDA_PROFILE=replays: a recorded pass is replayed, and timed as one operation. */
    boolean timesReplays() {
        return timesReplays;
    }

    /** Name → {calls, nanoseconds} since the last reset. */
    Map<String, long[]> profile() {
        if (eventProfiling) {
            collectEvents();
        }
        return profile;
    }

    /** Mean milliseconds of {@code work} over {@code reps} runs, by CUDA events on the stream (after one warm-up). */
    float eventMillis(Runnable work, int reps) {
        work.run();
        jcuda.driver.CUevent start = new jcuda.driver.CUevent();
        jcuda.driver.CUevent stop = new jcuda.driver.CUevent();
        jcuda.driver.JCudaDriver.cuEventCreate(start, 0);
        jcuda.driver.JCudaDriver.cuEventCreate(stop, 0);
        jcuda.driver.JCudaDriver.cuEventRecord(start, stream);
        for (int i = 0; i < reps; i++) {
            work.run();
        }
        jcuda.driver.JCudaDriver.cuEventRecord(stop, stream);
        jcuda.driver.JCudaDriver.cuEventSynchronize(stop);
        float[] ms = new float[1];
        jcuda.driver.JCudaDriver.cuEventElapsedTime(ms, start, stop);
        jcuda.driver.JCudaDriver.cuEventDestroy(start);
        jcuda.driver.JCudaDriver.cuEventDestroy(stop);
        return ms[0] / reps;
    }

    /**
     * Launches a kernel of the project's module on the stream; arguments: Long (addresses), Integer, Float, Double.
     * A launch of more dynamic shared memory than its kernel allows by default (48 KB) opts the kernel in to it first.
     */
    void launch(String kernel, int gridX, int gridY, int blockX, int sharedBytes, Object... args) {
        Function f = function(kernel, sharedBytes);
        timed(kernel, () -> launcher.launch(kernel, f.handle(), gridX, gridY, blockX, sharedBytes, stream.handle(),
                args));
    }

    /** The most dynamic shared memory one block of the kernel may take once opted in (less its static shared). */
    int dynamicSharedLimit(String kernel) {
        return sharedPerBlockOptIn
                - functionAttribute(kernel, CUfunction_attribute.CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES);
    }

    /** The most threads a block of the kernel may have (its registers per thread bound it). */
    int maxThreadsPerBlock(String kernel) {
        return functionAttribute(kernel, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
    }

    /**
     * How many blocks of {@code blockX} threads and {@code sharedBytes} of dynamic shared memory of the kernel one
     * multiprocessor holds at once (the driver's occupancy calculator: registers, shared memory, threads); 0 if none.
     */
    int blocksPerMultiprocessor(String kernel, int blockX, int sharedBytes) {
        int[] blocks = new int[1];
        cuOccupancyMaxActiveBlocksPerMultiprocessor(blocks, function(kernel, sharedBytes), blockX, sharedBytes);
        return blocks[0];
    }

    private int functionAttribute(String kernel, int attribute) {
        int[] v = new int[1];
        cuFuncGetAttribute(v, attribute, function(kernel, 0));
        return v[0];
    }

    /** The kernel's handle, opted in to {@code sharedBytes} of dynamic shared memory where it allows less. */
    private Function function(String kernel, int sharedBytes) {
        Function f = functions.computeIfAbsent(kernel, k -> {
            Function fn = new Function();
            cuModuleGetFunction(fn, module, k);
            int[] allowed = new int[1];
            cuFuncGetAttribute(allowed, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, fn);
            fn.dynamicShared = allowed[0];
            return fn;
        });
        if (sharedBytes > f.dynamicShared) {
            cuFuncSetAttribute(f, CUfunction_attribute.CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, sharedBytes);
            f.dynamicShared = sharedBytes;
        }
        return f;
    }

    /** A kernel whose native handle can be passed to cuLaunchKernel through java.lang.foreign. */
    private static final class Function extends CUfunction {
        /** The most dynamic shared memory a launch of the kernel may take (its MAX_DYNAMIC_SHARED_SIZE_BYTES). */
        int dynamicShared;

        long handle() {
            return getNativePointer();
        }
    }

    /**
     * cuLaunchKernel called through java.lang.foreign: the arguments are written into one reused native buffer (the
     * driver copies them at the call), so a launch costs a downcall and no JNI array pinning — a training step makes
     * a few thousand of them.
     */
    private static final class KernelLauncher {
        private static final int MAX_ARGS = 32;
        private final MethodHandle cuLaunchKernel;
        /** cuFuncGetParamInfo (drivers of CUDA 12.4 on), or null: each kernel's parameter sizes, to check arguments. */
        private final MethodHandle cuFuncGetParamInfo;
        private final Map<Long, long[]> parameterSizes = new HashMap<>();
        private final MemorySegment info;
        private final MemorySegment values;
        private final MemorySegment pointers;

        KernelLauncher() {
            Arena arena = Arena.ofAuto();
            SymbolLookup cuda = SymbolLookup.libraryLookup("libcuda.so.1", arena);
            cuLaunchKernel = Linker.nativeLinker().downcallHandle(cuda.find("cuLaunchKernel").orElseThrow(),
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT,
                            JAVA_INT, ADDRESS, ADDRESS, ADDRESS));
            cuFuncGetParamInfo = cuda.find("cuFuncGetParamInfo").map(f -> Linker.nativeLinker().downcallHandle(f,
                    FunctionDescriptor.of(JAVA_INT, ADDRESS, JAVA_LONG, ADDRESS, ADDRESS))).orElse(null);
            info = arena.allocate(JAVA_LONG, 2);
            values = arena.allocate(8L * MAX_ARGS, 8);
            pointers = arena.allocate(ADDRESS, MAX_ARGS);
            for (int i = 0; i < MAX_ARGS; i++) {
                pointers.setAtIndex(ADDRESS, i, values.asSlice(8L * i));
            }
        }

        void launch(String kernel, long function, int gridX, int gridY, int blockX, int sharedBytes, long stream,
                Object[] args) {
            if (args.length > MAX_ARGS) {
                throw new IllegalArgumentException(kernel + ": " + args.length + " arguments, at most " + MAX_ARGS);
            }
            checkSizes(kernel, function, args);
            for (int i = 0; i < args.length; i++) {
                long at = 8L * i;
                switch (args[i]) {
                    case Long l -> values.set(JAVA_LONG, at, l);
                    case Integer n -> values.set(JAVA_INT, at, n);
                    case Float x -> values.set(JAVA_FLOAT, at, x);
                    case Double d -> values.set(JAVA_DOUBLE, at, d);
                    default -> throw new IllegalArgumentException("kernel argument of type " + args[i].getClass());
                }
            }
            int status;
            try {
                status = (int) cuLaunchKernel.invokeExact(MemorySegment.ofAddress(function), gridX, gridY, 1, blockX,
                        1, 1, sharedBytes, MemorySegment.ofAddress(stream), pointers, MemorySegment.NULL);
            } catch (Throwable t) {
                throw new IllegalStateException("cuLaunchKernel(" + kernel + ") failed: " + t, t);
            }
            if (status != 0) {
                throw new IllegalStateException("cuLaunchKernel(" + kernel + ", grid " + gridX + "x" + gridY
                        + ", block " + blockX + ", shared " + sharedBytes + ") returned CUresult " + status);
            }
        }

        /**
         * Each argument has its parameter's size (Long and Double 8 bytes, Integer and Float 4): an int given for a
         * size_t leaves 4 stale bytes of the reused argument buffer in the count (an illegal address, 2026-12-07e).
         */
        private void checkSizes(String kernel, long function, Object[] args) {
            if (cuFuncGetParamInfo == null) {
                return;
            }
            long[] sizes = parameterSizes.computeIfAbsent(function, this::queryParameterSizes);
            if (sizes.length != args.length) {
                throw new IllegalArgumentException(kernel + " takes " + sizes.length + " arguments, given "
                        + args.length);
            }
            for (int i = 0; i < args.length; i++) {
                long given = args[i] instanceof Long || args[i] instanceof Double ? 8 : 4;
                if (given != sizes[i]) {
                    throw new IllegalArgumentException(kernel + "'s parameter " + i + " is " + sizes[i]
                            + " bytes, given a " + args[i].getClass().getSimpleName() + " (" + given + " bytes)");
                }
            }
        }

        /** The kernel's parameter sizes, queried until the driver says there are no more. */
        private long[] queryParameterSizes(long function) {
            List<Long> sizes = new ArrayList<>();
            try {
                while ((int) cuFuncGetParamInfo.invokeExact(MemorySegment.ofAddress(function), (long) sizes.size(),
                        info, info.asSlice(8)) == 0) {
                    sizes.add(info.getAtIndex(JAVA_LONG, 1));
                }
            } catch (Throwable t) {
                throw new IllegalStateException("cuFuncGetParamInfo failed: " + t, t);
            }
            return sizes.stream().mapToLong(Long::longValue).toArray();
        }
    }

    @Override
    public void close() {
        synchronize();
        events.forEach(jcuda.driver.JCudaDriver::cuEventDestroy);
        for (Staging s : staging) {
            if (s != null) {
                s.free();
                jcuda.driver.JCudaDriver.cuEventDestroy(s.copied);
            }
        }
        cuModuleUnload(module);
        cuStreamDestroy(stream);
        cuDevicePrimaryCtxRelease(device);
    }
}
