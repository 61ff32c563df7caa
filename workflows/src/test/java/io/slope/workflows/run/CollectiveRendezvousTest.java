package io.slope.workflows.run;

import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Base64;
import org.junit.jupiter.api.Test;

class CollectiveRendezvousTest {
    @Test
    void acceptsTheTcpAndTheNcclIdForms() {
        assertTrue(CollectiveRendezvous.wellFormed("127.0.0.1:40123:9f3a"));
        byte[] id = new byte[128];
        for (int i = 0; i < id.length; i++) {
            id[i] = (byte) (i * 37);
        }
        assertTrue(CollectiveRendezvous.wellFormed("nccl:" + Base64.getEncoder().encodeToString(id)));
    }

    @Test
    void refusesAnythingElse() {
        assertFalse(CollectiveRendezvous.wellFormed(null));
        assertFalse(CollectiveRendezvous.wellFormed("not an id"));
        assertFalse(CollectiveRendezvous.wellFormed("nccl:" + Base64.getEncoder().encodeToString(new byte[127])));
        assertFalse(CollectiveRendezvous.wellFormed("nccl:" + Base64.getEncoder().encodeToString(new byte[129])));
        assertFalse(CollectiveRendezvous.wellFormed("nccl:" + Base64.getEncoder().encodeToString(new byte[128])
                + " "));
    }
}
