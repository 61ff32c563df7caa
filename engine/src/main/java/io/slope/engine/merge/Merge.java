package io.slope.engine.merge;

import io.slope.engine.model.GptConfig;
import io.slope.engine.model.GptModel;
import io.slope.engine.model.ModelSnapshot;
import io.slope.engine.sparse.NmMasks;
import io.slope.engine.sparse.NmPattern;
import io.slope.spec.Mode;
import java.util.LinkedHashMap;
import java.util.Map;

/**
 * The two forms of a trained sparse + low-rank model (docs/method.md, "Merge and the inference form"):
 * <ul>
 *   <li>the <em>dense export</em> W = W^R + (A·B·scale)ᵀ, for tools that know nothing of sparsity; it computes the same
 *       function as the trained model;
 *   <li>the <em>inference form</em>: W^R kept as it is, the scale folded into B (B' = B·scale) and A pruned N:M along
 *       d_in, so that [W^R; Aᵀ] is one N:M operand. Pruning A changes the function slightly; the loss change is
 *       measured, never assumed.
 * </ul>
 */
public final class Merge {
    private Merge() {}

    /** Dense weights in the model's declared order and PyTorch layout, adapters folded in. */
    public static Map<String, double[]> denseExport(GptConfig config, ModelSnapshot model) {
        Map<String, double[]> dense = model.denseValues(config);
        if (model.adapterRank() > 0) {
            Map<String, int[]> shapes = GptModel.parameterShapes(config);
            for (String name : model.rowKept().keySet()) {
                String layer = name.substring(0, name.length() - ".weight".length());
                int dOut = shapes.get(name)[0];
                int dIn = shapes.get(name)[1];
                addLowRank(dense.get(name), model.adapters().get(layer + ".lora_A"),
                        model.adapters().get(layer + ".lora_B"), dIn, model.adapterRank(), dOut,
                        model.adapterScale());
            }
        }
        return dense;
    }

    /** The config that loads {@link #denseExport}: the same shape with no sparse layers. */
    public static GptConfig denseConfig(GptConfig config) {
        return new GptConfig(config.layers(), config.heads(), config.dModel(), config.seqLen(), config.vocab(),
                Mode.DENSE, config.pattern(), config.denseFirstQkv());
    }

    /** The inference form: sparse layers unchanged, A pruned N:M along d_in, B' = B·scale, scale 1. */
    public static ModelSnapshot inferenceForm(GptConfig config, ModelSnapshot model) {
        if (model.adapterRank() == 0) {
            return model;
        }
        int r = model.adapterRank();
        Map<String, double[]> adapters = new LinkedHashMap<>();
        for (Map.Entry<String, double[]> e : model.adapters().entrySet()) {
            double[] w = e.getValue();
            if (e.getKey().endsWith(".lora_A")) {
                adapters.put(e.getKey(), pruneAdapterA(w, r, config.pattern()));
            } else {
                double[] b = new double[w.length];
                for (int i = 0; i < w.length; i++) {
                    b[i] = w[i] * model.adapterScale();
                }
                adapters.put(e.getKey(), b);
            }
        }
        return new ModelSnapshot(model.values(), model.rowKept(), model.columnMasks(), adapters, r, 1.0);
    }

    /**
     * The inference form's A ({@code dIn × r}, row-major): Aᵀ joins W^R as extra rows, so it is pruned like them, N:M
     * along d_in, which is down A's columns.
     */
    public static double[] pruneAdapterA(double[] a, int r, NmPattern pattern) {
        byte[] kept = NmMasks.columnMask(a, a.length / r, r, pattern);
        double[] pruned = new double[a.length];
        for (int i = 0; i < a.length; i++) {
            pruned[i] = kept[i] == 1 ? a[i] : 0.0;
        }
        return pruned;
    }

    /** w[o, i] += scale · Σ_j a[i, j]·b[j, o] for w dOut×dIn, a dIn×r, b r×dOut. */
    private static void addLowRank(double[] w, double[] a, double[] b, int dIn, int r, int dOut, double scale) {
        for (int o = 0; o < dOut; o++) {
            for (int i = 0; i < dIn; i++) {
                double s = 0;
                for (int j = 0; j < r; j++) {
                    s += a[i * r + j] * b[j * dOut + o];
                }
                w[o * dIn + i] += scale * s;
            }
        }
    }
}
