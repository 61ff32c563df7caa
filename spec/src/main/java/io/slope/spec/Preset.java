package io.slope.spec;

import java.util.Arrays;
import java.util.List;

/** Named GPT-2 shapes, from test-sized to GPT-2 XL (1558M). */
public enum Preset {
    TINY("tiny", 2, 4, 64, 64),
    MINI("mini", 4, 4, 128, 128),
    CHAR_SMALL("char-small", 6, 6, 384, 256),
    GPT2_SMALL("gpt2-small", 12, 12, 768, 1024),
    GPT2_MEDIUM("gpt2-medium", 24, 16, 1024, 1024),
    GPT2_LARGE("gpt2-large", 36, 20, 1280, 1024),
    GPT2_XL("gpt2-xl", 48, 25, 1600, 1024);

    private final String wireName;
    private final int layers;
    private final int heads;
    private final int dModel;
    private final int seqLen;

    Preset(String wireName, int layers, int heads, int dModel, int seqLen) {
        this.wireName = wireName;
        this.layers = layers;
        this.heads = heads;
        this.dModel = dModel;
        this.seqLen = seqLen;
    }

    public String wireName() {
        return wireName;
    }

    /** The preset's shape, as a resolved spec that names it and overrides nothing has it. */
    public ResolvedSpec.Model model() {
        return new ResolvedSpec.Model(this, layers, heads, dModel, seqLen);
    }

    public static List<String> wireNames() {
        return Arrays.stream(values()).map(Preset::wireName).toList();
    }

    public static Preset fromWire(String name) {
        for (Preset p : values()) {
            if (p.wireName.equals(name)) {
                return p;
            }
        }
        return null;
    }
}
