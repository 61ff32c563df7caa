package io.slope.activities.checkpoint;

import io.slope.catalogue.RunCatalogue;
import io.slope.catalogue.RunCatalogue.CheckpointRow;
import io.slope.catalogue.RunRow;
import java.io.IOException;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashSet;
import java.util.List;
import java.util.Set;
import java.util.UUID;

/**
 * Retention: deletes the checkpoints a {@link RetentionPolicy} does not keep, objects first (COMMIT before the rest)
 * and catalogue rows second, so a crash midway leaves at worst a row without objects, which the next run of the GC
 * deletes again. Running it twice is the same as running it once.
 */
public final class CheckpointGc {
    private final RunCatalogue catalogue;

    public CheckpointGc(RunCatalogue catalogue) {
        this.catalogue = catalogue;
    }

    /** @return the steps deleted */
    public List<Long> collect(UUID runId, S3CheckpointStore store, RetentionPolicy policy)
            throws IOException, SQLException {
        List<CheckpointRow> rows = catalogue.checkpoints(runId);
        long latest = catalogue.run(runId).map(RunRow::latestStep).orElse(-1L);
        Set<Long> keep = keptSteps(rows, latest, policy);
        List<Long> deleted = new ArrayList<>();
        for (CheckpointRow row : rows) {
            if (!keep.contains(row.step())) {
                store.delete(row.step());
                catalogue.deleteCheckpointRow(runId, row.step());
                deleted.add(row.step());
            }
        }
        return deleted;
    }

    static Set<Long> keptSteps(List<CheckpointRow> rows, long latest, RetentionPolicy policy) {
        Set<Long> keep = new HashSet<>();
        keep.add(latest);
        rows.stream().sorted(Comparator.comparingLong(CheckpointRow::step).reversed()).limit(policy.keepLast())
                .forEach(r -> keep.add(r.step()));
        rows.stream().filter(r -> r.valLoss() != null).sorted(Comparator.comparingDouble(CheckpointRow::valLoss))
                .limit(policy.keepBest()).forEach(r -> keep.add(r.step()));
        for (CheckpointRow row : rows) {
            if (row.pinned() || (policy.majorEvery() > 0 && row.step() % policy.majorEvery() == 0 && row.step() > 0)) {
                keep.add(row.step());
            }
        }
        return keep;
    }
}
