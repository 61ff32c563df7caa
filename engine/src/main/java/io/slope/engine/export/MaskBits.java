package io.slope.engine.export;

/**
 * Masks packed one bit per entry, row by row: row r of a {@code rows × cols} mask takes {@code ceil(cols / 8)} bytes;
 * entry (r, c) is bit {@code c mod 8} (least significant bit first) of byte {@code r · ceil(cols / 8) + c / 8}; unused
 * trailing bits of a row are 0. This is numpy's {@code packbits(mask, axis=1, bitorder="little")}.
 */
public final class MaskBits {
    private MaskBits() {}

    public static int bytesPerRow(int cols) {
        return (cols + 7) / 8;
    }

    /** Packs a {@code rows × cols} byte mask (1 = kept, 0 = not). */
    public static byte[] pack(byte[] mask, int rows, int cols) {
        if (mask.length != rows * cols) {
            throw new IllegalArgumentException("mask of " + mask.length + " entries is not " + rows + "×" + cols);
        }
        int stride = bytesPerRow(cols);
        byte[] packed = new byte[rows * stride];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < cols; c++) {
                byte bit = mask[r * cols + c];
                if (bit == 1) {
                    packed[r * stride + c / 8] |= (byte) (1 << (c % 8));
                } else if (bit != 0) {
                    throw new IllegalArgumentException("mask entry (" + r + ", " + c + ") is " + bit + ", not 0 or 1");
                }
            }
        }
        return packed;
    }

    /** The {@code rows × cols} byte mask of packed bits; refuses set padding bits, which no writer produces. */
    public static byte[] unpack(byte[] packed, int rows, int cols) {
        int stride = bytesPerRow(cols);
        if (packed.length != rows * stride) {
            throw new IllegalArgumentException(packed.length + " bytes do not pack a " + rows + "×" + cols + " mask");
        }
        byte[] mask = new byte[rows * cols];
        for (int r = 0; r < rows; r++) {
            for (int c = 0; c < stride * 8; c++) {
                int bit = (packed[r * stride + c / 8] >> (c % 8)) & 1;
                if (c < cols) {
                    mask[r * cols + c] = (byte) bit;
                } else if (bit != 0) {
                    throw new IllegalArgumentException("padding bit " + c + " of row " + r + " is set");
                }
            }
        }
        return mask;
    }
}
