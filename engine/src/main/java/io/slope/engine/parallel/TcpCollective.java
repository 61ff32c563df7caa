package io.slope.engine.parallel;

import java.io.BufferedInputStream;
import java.io.BufferedOutputStream;
import java.io.DataInputStream;
import java.io.DataOutputStream;
import java.io.EOFException;
import java.io.IOException;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.ServerSocket;
import java.net.Socket;
import java.net.SocketTimeoutException;
import java.nio.ByteBuffer;
import java.security.SecureRandom;
import java.time.Duration;
import java.util.HexFormat;

/**
 * A {@link Collective} over TCP in a star: rank 0 listens, the other ranks connect to it, and rank 0 sums (in rank
 * order) and relays. The rendezvous mirrors NCCL's: rank 0 calls {@link #listen} and hands {@link Host#uniqueId()} to
 * the others (through the workflow), which {@link #join} with it. A peer that dies, stalls past the timeout or aborts
 * fails every rank's next operation with a {@link CollectiveException} naming it.
 */
public final class TcpCollective implements Collective {
    /** The CPU backend's rendezvous. */
    public static final CollectiveProvider PROVIDER = new CollectiveProvider() {
        @Override
        public Host listen(int worldSize, Duration timeout) throws IOException {
            return TcpCollective.listen(worldSize, timeout);
        }

        @Override
        public TcpCollective join(String uniqueId, int rank, int worldSize, Duration timeout) throws IOException {
            return TcpCollective.join(uniqueId, rank, worldSize, timeout);
        }
    };

    private static final byte DATA = 1;
    private static final byte ABORT = 2;

    private final int rank;
    private final int worldSize;
    /** Rank 0: one connection per peer, index = rank. Other ranks: index 0 is the connection to rank 0. */
    private final Socket[] sockets;
    private final DataInputStream[] in;
    private final DataOutputStream[] out;
    private volatile String abortReason;
    private int sequence;

    private TcpCollective(int rank, int worldSize, Socket[] sockets) throws IOException {
        this.rank = rank;
        this.worldSize = worldSize;
        this.sockets = sockets;
        this.in = new DataInputStream[sockets.length];
        this.out = new DataOutputStream[sockets.length];
        for (int i = 0; i < sockets.length; i++) {
            if (sockets[i] != null) {
                in[i] = new DataInputStream(new BufferedInputStream(sockets[i].getInputStream(), 1 << 16));
                out[i] = new DataOutputStream(new BufferedOutputStream(sockets[i].getOutputStream(), 1 << 16));
            }
        }
    }

    /** Rank 0's side of the rendezvous: a listener on loopback whose id the other ranks join with. */
    public static final class Host implements CollectiveProvider.Rendezvous {
        private final ServerSocket server;
        private final int worldSize;
        private final String nonce;
        private final Duration timeout;

        private Host(ServerSocket server, int worldSize, String nonce, Duration timeout) {
            this.server = server;
            this.worldSize = worldSize;
            this.nonce = nonce;
            this.timeout = timeout;
        }

        /** host:port:nonce; the nonce keeps a stray connection from joining the wrong run. */
        @Override
        public String uniqueId() {
            return server.getInetAddress().getHostAddress() + ":" + server.getLocalPort() + ":" + nonce;
        }

        /** Waits until every other rank has joined; fails naming the missing ranks after the timeout. */
        @Override
        public TcpCollective awaitPeers() throws IOException {
            Socket[] peers = new Socket[worldSize];
            long deadline = System.nanoTime() + timeout.toNanos();
            try {
                for (int joined = 1; joined < worldSize; joined++) {
                    int left = (int) Math.max(1, (deadline - System.nanoTime()) / 1_000_000);
                    server.setSoTimeout(left);
                    Socket s;
                    try {
                        s = server.accept();
                    } catch (SocketTimeoutException e) {
                        throw new CollectiveException("rendezvous: " + (worldSize - joined) + " of " + (worldSize - 1)
                                + " ranks did not join within " + timeout.toSeconds() + " s; missing " + missing(peers));
                    }
                    s.setSoTimeout((int) timeout.toMillis());
                    s.setTcpNoDelay(true);
                    DataInputStream hello = new DataInputStream(s.getInputStream());
                    String theirNonce = hello.readUTF();
                    int theirRank = hello.readInt();
                    int theirWorld = hello.readInt();
                    if (!theirNonce.equals(nonce) || theirWorld != worldSize || theirRank < 1 || theirRank >= worldSize
                            || peers[theirRank] != null) {
                        s.close();
                        joined--;
                        continue;
                    }
                    peers[theirRank] = s;
                }
            } catch (IOException | RuntimeException e) {
                for (Socket p : peers) {
                    if (p != null) {
                        p.close();
                    }
                }
                throw e;
            } finally {
                server.close();
            }
            return new TcpCollective(0, worldSize, peers);
        }

        private static String missing(Socket[] peers) {
            StringBuilder b = new StringBuilder();
            for (int r = 1; r < peers.length; r++) {
                if (peers[r] == null) {
                    b.append(b.isEmpty() ? "" : ", ").append(r);
                }
            }
            return "rank " + b;
        }

        @Override
        public void close() throws IOException {
            server.close();
        }
    }

    /**
     * Opens rank 0's listener on loopback. {@code timeout} bounds the rendezvous and every later wait for a peer: a
     * peer silent for that long is taken for dead.
     */
    public static Host listen(int worldSize, Duration timeout) throws IOException {
        if (worldSize < 1) {
            throw new IllegalArgumentException("worldSize must be at least 1, got " + worldSize);
        }
        ServerSocket server = new ServerSocket();
        server.bind(new InetSocketAddress(InetAddress.getLoopbackAddress(), 0), worldSize);
        byte[] nonce = new byte[8];
        new SecureRandom().nextBytes(nonce);
        return new Host(server, worldSize, HexFormat.of().formatHex(nonce), timeout);
    }

    /** Rank {@code rank} (1 … worldSize−1) joins the group that rank 0's {@code uniqueId} names. */
    public static TcpCollective join(String uniqueId, int rank, int worldSize, Duration timeout) throws IOException {
        String[] parts = uniqueId.split(":");
        if (parts.length != 3) {
            throw new IllegalArgumentException("collective id '" + uniqueId + "' is not host:port:nonce");
        }
        if (rank < 1 || rank >= worldSize) {
            throw new IllegalArgumentException("rank must be in [1, " + worldSize + ") to join, got " + rank);
        }
        Socket s = new Socket();
        try {
            s.connect(new InetSocketAddress(parts[0], Integer.parseInt(parts[1])), (int) timeout.toMillis());
        } catch (IOException e) {
            s.close();
            throw new CollectiveException("rendezvous: rank 0 at " + parts[0] + ":" + parts[1]
                    + " does not answer (" + e.getMessage() + ")", e);
        }
        s.setSoTimeout((int) timeout.toMillis());
        s.setTcpNoDelay(true);
        DataOutputStream hello = new DataOutputStream(s.getOutputStream());
        hello.writeUTF(parts[2]);
        hello.writeInt(rank);
        hello.writeInt(worldSize);
        hello.flush();
        return new TcpCollective(rank, worldSize, new Socket[] {s});
    }

    @Override
    public int rank() {
        return rank;
    }

    @Override
    public int worldSize() {
        return worldSize;
    }

    @Override
    public synchronized double[] allReduceSum(double[] local) {
        int seq = sequence++;
        if (rank != 0) {
            send(0, seq, local);
            return receive(0, seq, local.length);
        }
        double[] sum = local.clone();
        for (int r = 1; r < worldSize; r++) {
            double[] theirs = receive(r, seq, local.length);
            for (int i = 0; i < sum.length; i++) {
                sum[i] += theirs[i];
            }
        }
        for (int r = 1; r < worldSize; r++) {
            send(r, seq, sum);
        }
        return sum;
    }

    @Override
    public synchronized double[] broadcast(double[] data, int root) {
        int seq = sequence++;
        if (rank == 0) {
            double[] value = root == 0 ? data : receive(root, seq, -1);
            for (int r = 1; r < worldSize; r++) {
                if (r != root) {
                    send(r, seq, value);
                }
            }
            return value;
        }
        if (rank == root) {
            send(0, seq, data);
            return data;
        }
        return receive(0, seq, -1);
    }

    @Override
    public void abort(String reason) {
        abortReason = reason;
        for (int i = 0; i < sockets.length; i++) {
            if (sockets[i] == null) {
                continue;
            }
            try {
                synchronized (out[i]) {
                    out[i].writeInt(-1);
                    out[i].writeByte(ABORT);
                    out[i].writeUTF(reason);
                    out[i].flush();
                }
            } catch (IOException ignored) {
                // The peer is gone already; closing below is all that is left to do.
            }
        }
        close();
    }

    @Override
    public void close() {
        for (Socket s : sockets) {
            if (s != null) {
                try {
                    s.close();
                } catch (IOException ignored) {
                    // Closing is best effort: the socket is unusable either way.
                }
            }
        }
    }

    private int peerRank(int index) {
        return rank == 0 ? index : 0;
    }

    private void send(int index, int seq, double[] data) {
        try {
            DataOutputStream o = out[index];
            synchronized (o) {
                o.writeInt(seq);
                o.writeByte(DATA);
                o.writeInt(data.length);
                ByteBuffer buf = ByteBuffer.allocate(data.length * Double.BYTES);
                buf.asDoubleBuffer().put(data);
                o.write(buf.array());
                o.flush();
            }
        } catch (IOException e) {
            throw failure(index, e);
        }
    }

    private double[] receive(int index, int seq, int expectedLength) {
        try {
            DataInputStream i = in[index];
            int theirSeq = i.readInt();
            byte kind = i.readByte();
            if (kind == ABORT) {
                String reason = i.readUTF();
                if (rank == 0) {
                    abort("rank " + peerRank(index) + " aborted: " + reason);
                }
                throw new CollectiveException("rank " + peerRank(index) + " aborted: " + reason);
            }
            int length = i.readInt();
            if (theirSeq != seq || (expectedLength >= 0 && length != expectedLength)) {
                throw new CollectiveException("rank " + peerRank(index) + " is out of step: operation " + theirSeq
                        + " with " + length + " values, expected operation " + seq
                        + (expectedLength >= 0 ? " with " + expectedLength : ""));
            }
            byte[] bytes = new byte[length * Double.BYTES];
            i.readFully(bytes);
            double[] data = new double[length];
            ByteBuffer.wrap(bytes).asDoubleBuffer().get(data);
            return data;
        } catch (IOException e) {
            throw failure(index, e);
        }
    }

    private CollectiveException failure(int index, IOException e) {
        String reason = abortReason;
        if (reason != null) {
            return new CollectiveException("collective aborted: " + reason, e);
        }
        String peer = "rank " + peerRank(index);
        if (e instanceof SocketTimeoutException) {
            return new CollectiveException(peer + " sent nothing within the timeout; taking it for dead", e);
        }
        if (e instanceof EOFException) {
            return new CollectiveException(peer + " closed its connection (it stopped or died)", e);
        }
        return new CollectiveException(peer + ": " + e.getMessage(), e);
    }
}
