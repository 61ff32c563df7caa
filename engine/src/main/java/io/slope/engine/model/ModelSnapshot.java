package io.slope.engine.model;

import io.slope.engine.sparse.NmMasks;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * A model's whole state on the host, in declared order: every parameter's values (kept values for sparse layers), the
 * sparse layers' static row masks (kept column indices per row) and current column masks (dOut × dIn, 1 = kept), and
 * the adapters ({@code <layer>.lora_A} dIn×r, {@code .lora_B} r×dOut) with the factor on their path; no adapters when
 * {@code adapterRank} is 0.
 */
public record ModelSnapshot(Map<String, double[]> values, Map<String, int[]> rowKept,
        Map<String, byte[]> columnMasks, Map<String, double[]> adapters, int adapterRank, double adapterScale) {

    /**
     * Every parameter (adapters not included) as a fresh dense array in declared order and PyTorch layout: a sparse
     * layer's kept values scattered at its row mask into W^R, zeros elsewhere; dense parameters copied.
     */
    public Map<String, double[]> denseValues(GptConfig config) {
        Map<String, int[]> shapes = GptModel.parameterShapes(config);
        Map<String, double[]> dense = new LinkedHashMap<>();
        for (Map.Entry<String, double[]> e : values.entrySet()) {
            String name = e.getKey();
            int[] kept = rowKept.get(name);
            if (kept == null) {
                dense.put(name, e.getValue().clone());
            } else {
                int[] shape = shapes.get(name);
                dense.put(name, NmMasks.scatterKept(e.getValue(), kept, shape[0], shape[1]));
            }
        }
        return dense;
    }
}
