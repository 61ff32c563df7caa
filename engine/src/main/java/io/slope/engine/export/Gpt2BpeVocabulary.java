package io.slope.engine.export;

import com.knuddels.jtokkit.Encodings;
import io.slope.engine.data.Gpt2BpeTokenizer;
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStream;
import java.io.InputStreamReader;
import java.io.UncheckedIOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Base64;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * GPT-2's BPE in the form Hugging Face reads it ({@code vocab.json} + {@code merges.txt}), rebuilt from the token ranks
 * our tokenizer uses (jtokkit's r50k_base, the same ranks as OpenAI's {@code encoder.json}), so the exported files
 * encode exactly as {@link Gpt2BpeTokenizer} does.
 *
 * <p>Tokens are byte strings; Hugging Face writes each byte as one printable character (GPT-2's {@code
 * bytes_to_unicode}). The merges are not stored in the ranks: the merge that made a token is found by running BPE on
 * its bytes with only the lower-ranked merges allowed, which stops at exactly the two parts that were merged last.
 */
final class Gpt2BpeVocabulary {
    static final String END_OF_TEXT = "<|endoftext|>";
    private static final String RANKS_RESOURCE = "r50k_base.tiktoken";
    private static final int SINGLE_BYTES = 256;

    /** Token strings by id (byte-level characters), {@code <|endoftext|>} last. */
    private final List<String> tokens;
    /** Merge i (rank 256 + i) as its two parts. */
    private final List<String[]> merges;

    private Gpt2BpeVocabulary(List<String> tokens, List<String[]> merges) {
        this.tokens = tokens;
        this.merges = merges;
    }

    private static final class Holder {
        static final Gpt2BpeVocabulary INSTANCE = build();
    }

    /** Built once: deriving the merges takes a moment. */
    static Gpt2BpeVocabulary instance() {
        return Holder.INSTANCE;
    }

    /** Token strings in id order, {@code <|endoftext|>} at id 50256. */
    List<String> tokens() {
        return tokens;
    }

    /** Merges in priority order: pair i makes the token of rank 256 + i. */
    List<String[]> merges() {
        return merges;
    }

    /** GPT-2's {@code bytes_to_unicode}: printable bytes stand for themselves, the others map to U+0100 onwards. */
    static char[] byteToChar() {
        char[] map = new char[256];
        boolean[] printable = new boolean[256];
        for (int b = 0; b < 256; b++) {
            printable[b] = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        }
        int next = 256;
        for (int b = 0; b < 256; b++) {
            map[b] = printable[b] ? (char) b : (char) next++;
        }
        return map;
    }

    private static Gpt2BpeVocabulary build() {
        char[] byteToChar = byteToChar();
        List<String> tokens = readRanks(byteToChar);
        Map<String, Integer> rankOf = new HashMap<>(tokens.size() * 2);
        for (int rank = 0; rank < tokens.size(); rank++) {
            rankOf.put(tokens.get(rank), rank);
        }
        List<String[]> merges = new ArrayList<>(tokens.size() - SINGLE_BYTES);
        for (int rank = SINGLE_BYTES; rank < tokens.size(); rank++) {
            merges.add(lastMerge(tokens.get(rank), rank, rankOf));
        }
        List<String> withEndOfText = new ArrayList<>(tokens);
        withEndOfText.add(END_OF_TEXT);
        if (withEndOfText.size() != Gpt2BpeTokenizer.VOCAB_SIZE) {
            throw new IllegalStateException(RANKS_RESOURCE + " holds " + tokens.size() + " tokens, expected "
                    + (Gpt2BpeTokenizer.VOCAB_SIZE - 1));
        }
        return new Gpt2BpeVocabulary(List.copyOf(withEndOfText), List.copyOf(merges));
    }

    /** The ranked byte strings of jtokkit's r50k_base file ("base64 rank" lines), as byte-level strings by rank. */
    private static List<String> readRanks(char[] byteToChar) {
        List<String> tokens = new ArrayList<>();
        try (InputStream in = Encodings.class.getResourceAsStream(RANKS_RESOURCE)) {
            if (in == null) {
                throw new IllegalStateException("jtokkit has no resource " + RANKS_RESOURCE);
            }
            BufferedReader reader = new BufferedReader(new InputStreamReader(in, StandardCharsets.US_ASCII));
            for (String line = reader.readLine(); line != null; line = reader.readLine()) {
                if (line.isEmpty()) {
                    continue;
                }
                int space = line.indexOf(' ');
                byte[] bytes = Base64.getDecoder().decode(line.substring(0, space));
                int rank = Integer.parseInt(line.substring(space + 1));
                if (rank != tokens.size() || (rank < SINGLE_BYTES) != (bytes.length == 1)) {
                    throw new IllegalStateException(RANKS_RESOURCE + ": rank " + rank + " of " + bytes.length
                            + " bytes out of order; single bytes must hold ranks 0-255");
                }
                StringBuilder token = new StringBuilder(bytes.length);
                for (byte b : bytes) {
                    token.append(byteToChar[b & 0xFF]);
                }
                tokens.add(token.toString());
            }
        } catch (IOException e) {
            throw new UncheckedIOException(e);
        }
        return tokens;
    }

    /** The two parts BPE joins last to make {@code token}: BPE over its characters with merges of rank < its own. */
    private static String[] lastMerge(String token, int rank, Map<String, Integer> rankOf) {
        List<String> parts = new ArrayList<>(token.length());
        for (int i = 0; i < token.length(); i++) {
            parts.add(token.substring(i, i + 1));
        }
        while (true) {
            int best = -1;
            int bestRank = rank;
            for (int i = 0; i + 1 < parts.size(); i++) {
                Integer r = rankOf.get(parts.get(i) + parts.get(i + 1));
                if (r != null && r < bestRank) {
                    best = i;
                    bestRank = r;
                }
            }
            if (best < 0) {
                break;
            }
            parts.set(best, parts.get(best) + parts.remove(best + 1));
        }
        if (parts.size() != 2) {
            throw new IllegalStateException("token of rank " + rank + " does not split into two lower-ranked parts: "
                    + parts);
        }
        return new String[] {parts.get(0), parts.get(1)};
    }
}
