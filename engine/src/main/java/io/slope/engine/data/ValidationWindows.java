package io.slope.engine.data;

import java.util.Objects;

/**
 * The fixed evaluation set: non-overlapping windows of {@code seqLen + 1} tokens laid end to end from the start of the
 * validation split, in order (a remainder shorter than a window is not used), optionally only the first
 * {@code maxWindows}. Every backend evaluates exactly these windows.
 */
public final class ValidationWindows {
    private final TokenSequence validation;
    private final int rowLength;
    private final int count;

    private ValidationWindows(TokenSequence validation, int seqLen, long maxWindows) {
        if (seqLen <= 0) {
            throw new IllegalArgumentException("seqLen must be positive, got " + seqLen);
        }
        this.validation = validation;
        this.rowLength = seqLen + 1;
        long available = validation.length() / rowLength;
        if (available == 0) {
            throw new IllegalArgumentException("the validation split has " + validation.length()
                    + " tokens, fewer than one window of seqLen + 1 = " + rowLength);
        }
        this.count = (int) Math.min(Math.min(available, maxWindows), Integer.MAX_VALUE);
    }

    public static ValidationWindows all(TokenSequence validation, int seqLen) {
        return new ValidationWindows(validation, seqLen, Long.MAX_VALUE);
    }

    public static ValidationWindows first(TokenSequence validation, int seqLen, int maxWindows) {
        if (maxWindows <= 0) {
            throw new IllegalArgumentException("maxWindows must be positive, got " + maxWindows);
        }
        return new ValidationWindows(validation, seqLen, maxWindows);
    }

    public int count() {
        return count;
    }

    public int rowLength() {
        return rowLength;
    }

    /** Window {@code index}: tokens {@code [index · (seqLen + 1), (index + 1) · (seqLen + 1))} of the split. */
    public int[] window(int index) {
        return windows(index, 1);
    }

    /** Windows {@code [first, first + n)} as {@code [n][seqLen + 1]} tokens, row-major. */
    public int[] windows(int first, int n) {
        Objects.checkFromIndexSize(first, n, count);
        return validation.read((long) first * rowLength, n * rowLength);
    }
}
