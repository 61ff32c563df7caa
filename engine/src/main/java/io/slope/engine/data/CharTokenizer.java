package io.slope.engine.data;

import java.util.Arrays;
import java.util.TreeSet;

/**
 * Character-level tokenizer: the vocabulary is the sorted set of Unicode code points of the training text, so ids are
 * stable for a given corpus. Code points outside it are refused rather than silently mapped.
 */
public final class CharTokenizer implements Tokenizer {
    /** Between two documents: a blank line, the separator plain-text corpora already use between paragraphs. */
    public static final String DOCUMENT_SEPARATOR = "\n\n";

    private final int[] codePoints;

    public CharTokenizer(int[] sortedCodePoints) {
        for (int i = 1; i < sortedCodePoints.length; i++) {
            if (sortedCodePoints[i - 1] >= sortedCodePoints[i]) {
                throw new IllegalArgumentException("vocabulary code points must be strictly increasing");
            }
        }
        this.codePoints = sortedCodePoints.clone();
    }

    /** The vocabulary of {@code text}: every distinct code point, sorted. */
    public static CharTokenizer fromText(String text) {
        TreeSet<Integer> set = new TreeSet<>();
        text.codePoints().forEach(set::add);
        return new CharTokenizer(set.stream().mapToInt(Integer::intValue).toArray());
    }

    public int[] codePoints() {
        return codePoints.clone();
    }

    @Override
    public String kind() {
        return "char";
    }

    @Override
    public int vocabSize() {
        return codePoints.length;
    }

    /** Fails when the vocabulary lacks '\n'; {@link Tokenizers#forCorpus} always includes it. */
    @Override
    public int[] documentSeparator() {
        return encode(DOCUMENT_SEPARATOR);
    }

    @Override
    public int[] encode(String text) {
        return text.codePoints().map(cp -> {
            int id = Arrays.binarySearch(codePoints, cp);
            if (id < 0) {
                throw new IllegalArgumentException("character U+" + Integer.toHexString(cp).toUpperCase()
                        + " is not in this model's vocabulary of " + codePoints.length + " characters");
            }
            return id;
        }).toArray();
    }

    /** Anywhere but inside a surrogate pair: each code point is one token. */
    @Override
    public boolean canSplitBetween(char before, char after) {
        return !(Character.isHighSurrogate(before) && Character.isLowSurrogate(after));
    }

    @Override
    public String decode(int[] ids) {
        StringBuilder sb = new StringBuilder(ids.length);
        for (int id : ids) {
            if (id < 0 || id >= codePoints.length) {
                throw new IllegalArgumentException("token id " + id + " outside the vocabulary [0, "
                        + codePoints.length + ")");
            }
            sb.appendCodePoint(codePoints[id]);
        }
        return sb.toString();
    }
}
