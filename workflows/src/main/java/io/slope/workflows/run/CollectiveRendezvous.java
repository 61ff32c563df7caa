package io.slope.workflows.run;

import java.util.regex.Pattern;

/** Rank 0's collective id ({@code host:port:nonce}) for the chunk attempt {@code group}: what ranks 1…N−1 join. */
public record CollectiveRendezvous(int group, String collectiveId) {
    private static final Pattern ID = Pattern.compile("[^:\\s]+:\\d{1,5}:[0-9a-f]+");

    /** Whether {@code id} has the form of a collective id; the validator refuses anything else. */
    public static boolean wellFormed(String id) {
        return id != null && ID.matcher(id).matches();
    }
}
