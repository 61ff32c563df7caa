package io.slope.engine.backend;

import io.slope.engine.cpu.CpuBackend;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.lang.reflect.Proxy;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * A CPU backend that reports the kernel choices a GPU's searches would have made, and keeps every record handed back
 * to it for reuse: the checkpoint side of issue 14 tested without a GPU. Everything else is the CPU backend's.
 */
public final class ChoosingBackend implements InvocationHandler {
    private final CpuBackend cpu = new CpuBackend(1);
    private final KernelChoices reported;
    private final List<KernelChoices> reused = new ArrayList<>();
    private final Backend backend;

    public ChoosingBackend(KernelChoices reported) {
        this.reported = reported;
        this.backend = (Backend) Proxy.newProxyInstance(Backend.class.getClassLoader(), new Class<?>[] {Backend.class},
                this);
    }

    /** Choices made on {@code gpu}: one dense GEMM shape and one 2:4 one. */
    public static KernelChoices madeOn(String gpu) {
        return new KernelChoices(Map.of("gpu", gpu, "computeCapability", "90", "cublasLt", "130100",
                "cusparseLt", "800"), Map.of("cublasLt NT m=32 n=96 k=32 fp32/fp32 bias", "0a0b",
                "cusparseLt m=128 k=32 n=32", "config=2 splitK=1 splitKMode=0 splitKBuffers=0"));
    }

    public Backend backend() {
        return backend;
    }

    /** The records handed to {@link Backend#reuseKernelChoices}, in order. */
    public List<KernelChoices> reused() {
        return reused;
    }

    @Override
    public Object invoke(Object proxy, Method method, Object[] args) throws Throwable {
        switch (method.getName()) {
            case "kernelChoices" -> {
                return reported;
            }
            case "reuseKernelChoices" -> {
                reused.add((KernelChoices) args[0]);
                return null;
            }
            default -> {
                try {
                    return method.invoke(cpu, args);
                } catch (InvocationTargetException e) {
                    throw e.getCause();
                }
            }
        }
    }
}
