package io.slope.cuda;

/** bfloat16 bit patterns on the host, rounded exactly as the CPU backend rounds (through float, nearest even). */
final class Bf16 {
    private Bf16() {}

    static short bits(double v) {
        float f = (float) v;
        int b = Float.floatToRawIntBits(f);
        if (Float.isNaN(f)) {
            return (short) ((b >>> 16) | 0x40);
        }
        b = b + 0x7FFF + ((b >>> 16) & 1);
        return (short) (b >>> 16);
    }

    static double value(short bits) {
        return Float.intBitsToFloat((bits & 0xFFFF) << 16);
    }
}
