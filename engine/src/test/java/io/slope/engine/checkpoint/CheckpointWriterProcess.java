package io.slope.engine.checkpoint;

import com.fasterxml.jackson.databind.ObjectMapper;
import java.nio.file.Path;
import java.util.List;

/**
 * A writer for {@link CheckpointCrashTest} to kill: commits checkpoints of consecutive steps forever, deleting the
 * one before the previous (as retention would), and prints "committed STEP" after each. Run in its own JVM.
 *
 * <p>Arguments: run root, first step.
 */
public final class CheckpointWriterProcess {
    /** Two 8 MiB tensors a checkpoint, in two shards: large enough that a kill often lands mid-write. */
    static final int TENSOR_BYTES = 8 << 20;

    private CheckpointWriterProcess() {}

    public static void main(String[] args) throws Exception {
        LocalCheckpointStore store = new LocalCheckpointStore(Path.of(args[0]), TENSOR_BYTES);
        System.out.println("started");
        System.out.flush();
        for (long step = Long.parseLong(args[1]); ; step++) {
            store.write(checkpoint(step), "writer-process-" + ProcessHandle.current().pid());
            System.out.println("committed " + step);
            System.out.flush();
            if (step >= 2) {
                store.delete(step - 2);
            }
        }
    }

    static Checkpoint checkpoint(long step) {
        var state = new ObjectMapper().createObjectNode().put("step", step);
        return new Checkpoint(step, List.of(
                NamedTensor.u8("a", new long[] {TENSOR_BYTES}, pattern(step, 0)),
                NamedTensor.u8("b", new long[] {TENSOR_BYTES}, pattern(step, 1)),
                NamedTensor.i64("step", new long[] {1}, new long[] {step})), state);
    }

    /** Content that differs between steps and tensors, so a mixed-up checkpoint cannot pass for a right one. */
    static byte[] pattern(long step, int tensor) {
        byte[] bytes = new byte[TENSOR_BYTES];
        for (int i = 0; i < bytes.length; i++) {
            bytes[i] = (byte) (i * 31 + step * 7 + tensor * 13 + (i >>> 12));
        }
        return bytes;
    }
}
