package io.slope.cuda;

import jcuda.driver.CUdeviceptr;

/**
 * A JCuda device pointer whose raw address can be read: JCuda keeps it in a protected field, and the FFM-bound
 * libraries (cuBLASLt, cuSPARSELt) and kernel arguments need it as a plain {@code long}.
 */
final class DevicePointer extends CUdeviceptr {
    long address() {
        return getNativePointer() + getByteOffset();
    }
}
