package io.slope.engine.data;

import java.io.IOException;

/**
 * Encodes a corpus's documents a piece at a time, each joined to the previous one by the tokenizer's document
 * separator: the tokens are those of encoding every document whole, while memory stays at about {@code window}
 * characters. Text collects in a buffer; when it is full it is cut at the last place the tokenizer allows
 * ({@link Tokenizer#canSplitBetween}), the part before is encoded and the rest kept. A buffer with no such place (one
 * pre-tokenizer piece longer than the window, such as a very long run of letters) grows until it has one.
 */
public final class TextEncoder implements Corpus.DocumentSink {
    public static final int DEFAULT_WINDOW = 1 << 16;

    /** Receives the tokens, in order. */
    public interface TokenSink {
        void tokens(int[] tokens) throws IOException;
    }

    private final Tokenizer tokenizer;
    private final TokenSink out;
    private final int[] separator;
    private char[] buffer;
    private int length;
    private boolean first = true;

    public TextEncoder(Tokenizer tokenizer, int window, TokenSink out) {
        if (window < 2) {
            throw new IllegalArgumentException("window must be at least 2 characters, got " + window);
        }
        this.tokenizer = tokenizer;
        this.out = out;
        this.separator = tokenizer.documentSeparator();
        this.buffer = new char[window];
    }

    @Override
    public void startDocument() throws IOException {
        if (!first) {
            out.tokens(separator);
        }
        first = false;
        length = 0;
    }

    @Override
    public void text(CharSequence piece) throws IOException {
        for (int i = 0; i < piece.length(); ) {
            if (length == buffer.length) {
                encodeAllButTail();
            }
            int n = Math.min(piece.length() - i, buffer.length - length);
            for (int j = 0; j < n; j++) {
                buffer[length + j] = piece.charAt(i + j);
            }
            length += n;
            i += n;
        }
    }

    @Override
    public void endDocument() throws IOException {
        if (length > 0) {
            out.tokens(tokenizer.encode(new String(buffer, 0, length)));
        }
        length = 0;
    }

    /** Encodes the buffer up to its last allowed cut and keeps the rest; grows it when there is none. */
    private void encodeAllButTail() throws IOException {
        int cut = length - 1;
        while (cut > 0 && !tokenizer.canSplitBetween(buffer[cut - 1], buffer[cut])) {
            cut--;
        }
        if (cut == 0) {
            buffer = java.util.Arrays.copyOf(buffer, buffer.length * 2);
            return;
        }
        out.tokens(tokenizer.encode(new String(buffer, 0, cut)));
        System.arraycopy(buffer, cut, buffer, 0, length - cut);
        length -= cut;
    }
}
