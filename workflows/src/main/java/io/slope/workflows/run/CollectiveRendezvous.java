package io.slope.workflows.run;

import java.util.regex.Pattern;

/**
 * Rank 0's collective id for the chunk attempt {@code group}: what ranks 1…N−1 join. Loopback TCP on the CPU
 * ({@code host:port:nonce}); NCCL on CUDA ({@code nccl:} and the base64 of the 128-byte ncclUniqueId).
 */
public record CollectiveRendezvous(int group, String collectiveId) {
    private static final Pattern TCP = Pattern.compile("[^:\\s]+:\\d{1,5}:[0-9a-f]+");
    /** 128 bytes: 42 groups of three and two bytes left, so 171 base64 characters and one '='. */
    private static final Pattern NCCL = Pattern.compile("nccl:[A-Za-z0-9+/]{171}=");

    /** Whether {@code id} has the form of a collective id; the validator refuses anything else. */
    public static boolean wellFormed(String id) {
        return id != null && (TCP.matcher(id).matches() || NCCL.matcher(id).matches());
    }
}
