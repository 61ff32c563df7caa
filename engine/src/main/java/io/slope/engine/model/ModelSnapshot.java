package io.slope.engine.model;

import java.util.Map;

/**
 * A model's whole state on the host, in declared order: every parameter's values (kept values for sparse layers), the
 * sparse layers' static row masks (kept column indices per row) and current column masks (dOut × dIn, 1 = kept), and
 * the adapters ({@code <layer>.lora_A} dIn×r, {@code .lora_B} r×dOut) with the factor on their path; no adapters when
 * {@code adapterRank} is 0.
 */
public record ModelSnapshot(Map<String, double[]> values, Map<String, int[]> rowKept,
        Map<String, byte[]> columnMasks, Map<String, double[]> adapters, int adapterRank, double adapterScale) {}
