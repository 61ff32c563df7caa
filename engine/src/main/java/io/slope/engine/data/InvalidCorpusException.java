package io.slope.engine.data;

/** The corpus cannot be used as given (missing path, malformed JSON line, no text, ...): retrying will not help. */
public final class InvalidCorpusException extends RuntimeException {
    public InvalidCorpusException(String message) {
        super(message);
    }
}
