package io.slope.engine.data;

import java.lang.management.ManagementFactory;
import java.lang.management.MemoryPoolMXBean;
import java.lang.management.MemoryType;
import java.nio.file.Path;
import java.util.List;

/**
 * A child JVM for {@link CorpusMemoryTest}: prepares {@code args[0]} with tokenizer {@code args[2]} into
 * {@code args[1]}, then prints the token counts and the peak heap use.
 */
public final class PrepareProcess {
    private PrepareProcess() {}

    public static void main(String[] args) throws Exception {
        Corpus corpus = Corpus.read(List.of(Path.of(args[0])));
        try (Dataset dataset = Dataset.prepare(corpus, Tokenizers.forCorpus(args[2], corpus), 0.1,
                Dataset.DEFAULT_TOKENS_PER_SHARD, Path.of(args[1]))) {
            long peak = 0;
            for (MemoryPoolMXBean pool : ManagementFactory.getMemoryPoolMXBeans()) {
                if (pool.getType() == MemoryType.HEAP) {
                    peak += pool.getPeakUsage().getUsed();
                }
            }
            System.out.println("tokens " + (dataset.train().length() + dataset.validation().length())
                    + " characters " + corpus.characters() + " peakHeapMiB " + (peak >> 20));
        }
    }
}
