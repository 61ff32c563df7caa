#!/usr/bin/env python3
"""Independent float64 numpy oracle: K SLoPe optimizer steps of a GPT-2 model.

Used in CI to check the Java engine. It is written from the method description
(docs/method.md), not from any Java code, and uses only
numpy, in float64 throughout.

Usage:
    python3 slope_step_oracle.py IN_DIR OUT_DIR

IN_DIR:
    config.json      {"layers", "heads", "dModel", "seqLen", "vocab", "mode", "n", "m",
                      "denseFirstQkv", "columnMaskRefresh", "peakLr", "warmupSteps",
                      "totalSteps", "minLrRatio", "beta1", "beta2", "eps", "weightDecay",
                      "gradClip", "batchSize", "gradAccum", "steps"}
                     mode is one of "dense", "sparse-no-double-prune", "slope".
    params/<name>.f64  initial DENSE weights (not yet pruned), little-endian float64,
                     row-major; Linear weights in PyTorch layout [d_out, d_in].
    tokens.i32       little-endian int32 [steps][gradAccum][batchSize][seqLen + 1].

OUT_DIR:
    params/<name>.f64  all parameters after K steps (sparse ones stored dense, zeros pruned)
    grads/<name>.f64   the clipped gradient used by the LAST step (masked for sparse weights)
    losses.json        {"losses": [mean training loss of each step, before its update]}
    debug.json         {"lrs": [...], "gradNorms": [global norm before clipping, per step]}

Semantics in brief (docs/method.md is the authority):
  * GPT-2, pre-LayerNorm (eps 1e-5, biased variance), learned positions, causal attention,
    GELU tanh approximation, tied lm_head, mean cross-entropy over all tokens of the step.
  * Sparse layers (mode != dense): c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj of every block,
    except block 0's c_attn when denseFirstQkv. The row mask (N:M along d_in, magnitude,
    ties keep the lower index) is chosen once from the initial weights.
  * Forward  y = x W^R^T + b.  Backward: dW = (dY^T X) * rowMask, db = sum dY,
    dX = dY W^R (sparse-no-double-prune) or dY W^{R,C} (slope), where W^{R,C} is W^R pruned
    N:M along d_out with a column mask refreshed every columnMaskRefresh steps.
  * Global-norm clipping, linear warmup + linear decay, torch.optim.AdamW; moments only at
    kept positions, so pruned weights stay exactly 0.
"""

import json
import math
import os
import sys

import numpy as np

LN_EPS = 1e-5            # LayerNorm epsilon (GPT-2)
CLIP_EPS = 1e-6          # torch.nn.utils.clip_grad_norm_ adds this to the norm
GELU_S = math.sqrt(2.0 / math.pi)
GELU_C = 0.044715
MODES = ("dense", "sparse-no-double-prune", "slope")


# ---------------------------------------------------------------------------------------
# configuration and parameter layout
# ---------------------------------------------------------------------------------------

def validate_config(cfg):
    """Fail loudly on anything the oracle would otherwise have to guess about."""
    required = ["layers", "heads", "dModel", "seqLen", "vocab", "mode", "peakLr",
                "warmupSteps", "totalSteps", "minLrRatio", "beta1", "beta2", "eps",
                "weightDecay", "gradClip", "batchSize", "gradAccum", "steps"]
    missing = [k for k in required if k not in cfg]
    if cfg.get("mode") != "dense":
        missing += [k for k in ("n", "m", "denseFirstQkv") if k not in cfg]
    if cfg.get("mode") == "slope" and "columnMaskRefresh" not in cfg:
        missing.append("columnMaskRefresh")
    if missing:
        raise ValueError("config.json lacks keys: %s" % missing)
    if cfg["mode"] not in MODES:
        raise ValueError("unknown mode %r (expected one of %s)" % (cfg["mode"], MODES))
    if cfg["dModel"] % cfg["heads"] != 0:
        raise ValueError("dModel must be divisible by heads")
    if cfg["steps"] < 1:
        raise ValueError("steps must be >= 1")
    if cfg["mode"] != "dense":
        n, m = cfg["n"], cfg["m"]
        if not (1 <= n <= m):
            raise ValueError("need 1 <= n <= m, got %d:%d" % (n, m))
        sparse = set(sparse_weight_names(cfg))
        for name, shape in param_specs(cfg):
            if name in sparse and (shape[0] % m or shape[1] % m):
                raise ValueError("%s %s: d_in and d_out must be divisible by m=%d" % (name, shape, m))
    if cfg["mode"] == "slope" and cfg["columnMaskRefresh"] < 1:
        raise ValueError("columnMaskRefresh must be >= 1")


def param_specs(cfg):
    """Parameters in declared order, as (name, shape). Order matters only for output listing."""
    C, T, V = cfg["dModel"], cfg["seqLen"], cfg["vocab"]
    specs = [("wte", (V, C)), ("wpe", (T, C))]
    for l in range(cfg["layers"]):
        p = "h.%d." % l
        specs += [
            (p + "ln_1.weight", (C,)), (p + "ln_1.bias", (C,)),
            (p + "attn.c_attn.weight", (3 * C, C)), (p + "attn.c_attn.bias", (3 * C,)),
            (p + "attn.c_proj.weight", (C, C)), (p + "attn.c_proj.bias", (C,)),
            (p + "ln_2.weight", (C,)), (p + "ln_2.bias", (C,)),
            (p + "mlp.c_fc.weight", (4 * C, C)), (p + "mlp.c_fc.bias", (4 * C,)),
            (p + "mlp.c_proj.weight", (C, 4 * C)), (p + "mlp.c_proj.bias", (C,)),
        ]
    specs += [("ln_f.weight", (C,)), ("ln_f.bias", (C,))]
    return specs


def sparse_weight_names(cfg):
    """Names of the Linear weights that carry an N:M row mask in this mode."""
    if cfg["mode"] == "dense":
        return []
    names = []
    for l in range(cfg["layers"]):
        p = "h.%d." % l
        if not (l == 0 and cfg["denseFirstQkv"]):
            names.append(p + "attn.c_attn.weight")
        names += [p + "attn.c_proj.weight", p + "mlp.c_fc.weight", p + "mlp.c_proj.weight"]
    return names


def decays(shape):
    """Weight decay applies to matrices (Linear weights, wte, wpe), not to biases or LN params."""
    return len(shape) == 2


# ---------------------------------------------------------------------------------------
# N:M masks
# ---------------------------------------------------------------------------------------

def nm_keep_last_axis(a, n, m):
    """Boolean keep-mask: in each group of m consecutive entries along the LAST axis keep
    the n entries of largest |a|. A stable sort of -|a| puts equal magnitudes in index
    order, so ties keep the lower index (docs/method.md, Masks)."""
    L = a.shape[-1]
    assert L % m == 0, (a.shape, m)
    g = np.abs(a).reshape(a.shape[:-1] + (L // m, m))
    order = np.argsort(-g, axis=-1, kind="stable")
    keep = np.zeros(g.shape, dtype=bool)
    np.put_along_axis(keep, order[..., :n], True, axis=-1)
    return keep.reshape(a.shape)


def row_mask(W, n, m):
    """Forward mask: N:M along d_in, i.e. along each row of W [d_out, d_in]."""
    return nm_keep_last_axis(W, n, m)


def col_mask(WR, n, m):
    """Backward (double-pruning) mask: N:M along d_out, i.e. within each column of W^R,
    in groups of m consecutive rows, by magnitude of W^R."""
    return nm_keep_last_axis(WR.T, n, m).T


# ---------------------------------------------------------------------------------------
# layers: one forward and one backward per layer type (llm.c style)
# activations are [B, T, ...]; every backward returns gradients of a scalar loss
# ---------------------------------------------------------------------------------------

def encoder_forward(wte, wpe, idx):
    """Token embedding plus learned position embedding."""
    T = idx.shape[1]
    return wte[idx] + wpe[:T][None, :, :]


def encoder_backward(dout, idx, wte_shape, wpe_shape):
    dwte = np.zeros(wte_shape)
    np.add.at(dwte, idx, dout)            # repeated token ids accumulate
    dwpe = np.zeros(wpe_shape)
    dwpe[:idx.shape[1]] = dout.sum(axis=0)
    return dwte, dwpe


def layernorm_forward(x, w, b):
    """LayerNorm over the last axis with the biased variance, eps 1e-5."""
    mean = x.mean(axis=-1, keepdims=True)
    xc = x - mean
    var = (xc * xc).mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(var + LN_EPS)
    xhat = xc * rstd
    return xhat * w + b, (xhat, rstd)


def layernorm_backward(dout, cache, w):
    xhat, rstd = cache
    dw = (dout * xhat).reshape(-1, w.shape[0]).sum(axis=0)
    db = dout.reshape(-1, w.shape[0]).sum(axis=0)
    dxhat = dout * w
    # d/dx of (x - mean) * rstd: remove the mean component and the component along xhat
    dx = rstd * (dxhat - dxhat.mean(axis=-1, keepdims=True)
                 - xhat * (dxhat * xhat).mean(axis=-1, keepdims=True))
    return dx, dw, db


def linear_forward(x, W_fwd, b):
    """y = x W^T + b; for a sparse layer W_fwd is W^R (the row-pruned weight)."""
    return x @ W_fwd.T + b


def linear_backward(dout, x, W_dx, keep=None):
    """Backward of y = x W^T + b.

    W_dx is the matrix the input gradient is taken through: W (dense), W^R
    (sparse-no-double-prune) or W^{R,C} (slope, double-pruned: NOT the exact gradient).
    keep is the row mask: the weight gradient is the dense dY^T X restricted to kept
    positions (BWD-1), so pruned weights never receive gradient."""
    d_out, d_in = W_dx.shape
    x2 = x.reshape(-1, d_in)
    g2 = dout.reshape(-1, d_out)
    dW = g2.T @ x2
    if keep is not None:
        dW = dW * keep
    db = g2.sum(axis=0)
    dx = dout @ W_dx                       # BWD-2: reduction over d_out
    return dx, dW, db


def attention_forward(qkv, n_head):
    """Causal multi-head self-attention on the c_attn output [B, T, 3C] = [q | k | v];
    head h uses columns h*hs ... (h+1)*hs - 1 of each part; scale 1/sqrt(hs)."""
    B, T, C3 = qkv.shape
    C = C3 // 3
    hs = C // n_head

    def heads(part):                       # [B, T, C] -> [B, H, T, hs]
        return part.reshape(B, T, n_head, hs).transpose(0, 2, 1, 3)

    q, k, v = heads(qkv[:, :, :C]), heads(qkv[:, :, C:2 * C]), heads(qkv[:, :, 2 * C:])
    scale = 1.0 / math.sqrt(hs)
    preatt = (q @ k.transpose(0, 1, 3, 2)) * scale
    causal = np.tril(np.ones((T, T), dtype=bool))
    preatt = np.where(causal, preatt, -np.inf)
    preatt = preatt - preatt.max(axis=-1, keepdims=True)
    e = np.exp(preatt)                     # exp(-inf) = 0 at future positions
    att = e / e.sum(axis=-1, keepdims=True)
    y = att @ v                            # [B, H, T, hs]
    out = y.transpose(0, 2, 1, 3).reshape(B, T, C)
    return out, (q, k, v, att, scale)


def attention_backward(dout, cache):
    q, k, v, att, scale = cache
    B, H, T, hs = q.shape
    C = H * hs
    dy = dout.reshape(B, T, H, hs).transpose(0, 2, 1, 3)
    datt = dy @ v.transpose(0, 1, 3, 2)
    dv = att.transpose(0, 1, 3, 2) @ dy
    # softmax backward; masked entries have att = 0 so they get no gradient
    dpre = att * (datt - (datt * att).sum(axis=-1, keepdims=True))
    dq = (dpre @ k) * scale
    dk = (dpre.transpose(0, 1, 3, 2) @ q) * scale

    def unheads(t):                        # [B, H, T, hs] -> [B, T, C]
        return t.transpose(0, 2, 1, 3).reshape(B, T, C)

    return np.concatenate([unheads(dq), unheads(dk), unheads(dv)], axis=-1)


def gelu_forward(x):
    """GELU, tanh approximation (HF gelu_new)."""
    return 0.5 * x * (1.0 + np.tanh(GELU_S * (x + GELU_C * x ** 3)))


def gelu_backward(dout, x):
    t = np.tanh(GELU_S * (x + GELU_C * x ** 3))
    dudx = GELU_S * (1.0 + 3.0 * GELU_C * x * x)
    return dout * (0.5 * (1.0 + t) + 0.5 * x * (1.0 - t * t) * dudx)


def crossentropy_forward(x, wte, targets):
    """Tied lm_head (logits = x wte^T) + softmax + cross-entropy.
    Returns the SUM of token losses, so micro-batches can be combined exactly."""
    logits = x @ wte.T                     # [B, T, V]
    z = logits - logits.max(axis=-1, keepdims=True)
    lse = np.log(np.exp(z).sum(axis=-1, keepdims=True))
    logp = z - lse
    nll = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return nll.sum(), (x, np.exp(logp))


def crossentropy_backward(scale, cache, wte, targets):
    """Gradient of scale * (sum of token losses); scale = 1 / (all tokens of the step)."""
    x, probs = cache
    dlogits = probs.copy()
    B, T = targets.shape
    dlogits[np.arange(B)[:, None], np.arange(T)[None, :], targets] -= 1.0
    dlogits *= scale
    dx = dlogits @ wte
    dwte = dlogits.reshape(-1, wte.shape[0]).T @ x.reshape(-1, x.shape[-1])
    return dx, dwte


# ---------------------------------------------------------------------------------------
# the model: forward + backward of one micro-batch
# ---------------------------------------------------------------------------------------

def gpt2_forward_backward(cfg, params, W_fwd, W_dx, keep, inputs, targets, scale):
    """One micro-batch. W_fwd / W_dx map every Linear weight name to the matrix used in
    the forward / for dX; keep maps sparse weight names to their row mask.
    Returns (sum of token losses, gradients of scale * that sum)."""
    P = params
    H = cfg["heads"]
    grads = {}

    # ---- forward ----
    x = encoder_forward(P["wte"], P["wpe"], inputs)
    caches = []
    for l in range(cfg["layers"]):
        p = "h.%d." % l
        c = {"x": x}
        c["ln1"], c["ln1_c"] = layernorm_forward(x, P[p + "ln_1.weight"], P[p + "ln_1.bias"])
        c["qkv"] = linear_forward(c["ln1"], W_fwd[p + "attn.c_attn.weight"], P[p + "attn.c_attn.bias"])
        c["atty"], c["att_c"] = attention_forward(c["qkv"], H)
        x2 = x + linear_forward(c["atty"], W_fwd[p + "attn.c_proj.weight"], P[p + "attn.c_proj.bias"])
        c["ln2"], c["ln2_c"] = layernorm_forward(x2, P[p + "ln_2.weight"], P[p + "ln_2.bias"])
        c["fch"] = linear_forward(c["ln2"], W_fwd[p + "mlp.c_fc.weight"], P[p + "mlp.c_fc.bias"])
        c["fcg"] = gelu_forward(c["fch"])
        x = x2 + linear_forward(c["fcg"], W_fwd[p + "mlp.c_proj.weight"], P[p + "mlp.c_proj.bias"])
        caches.append(c)
    lnf, lnf_c = layernorm_forward(x, P["ln_f.weight"], P["ln_f.bias"])
    loss_sum, ce_c = crossentropy_forward(lnf, P["wte"], targets)

    # ---- backward ----
    dlnf, dwte_head = crossentropy_backward(scale, ce_c, P["wte"], targets)
    dx, grads["ln_f.weight"], grads["ln_f.bias"] = layernorm_backward(dlnf, lnf_c, P["ln_f.weight"])

    def lin_back(dout, inp, wname, bname):
        dinp, dW, db = linear_backward(dout, inp, W_dx[wname], keep.get(wname))
        grads[wname], grads[bname] = dW, db
        return dinp

    for l in reversed(range(cfg["layers"])):
        p = "h.%d." % l
        c = caches[l]
        # x_out = x2 + mlp(ln2(x2)): the residual passes dx through unchanged
        dfcg = lin_back(dx, c["fcg"], p + "mlp.c_proj.weight", p + "mlp.c_proj.bias")
        dfch = gelu_backward(dfcg, c["fch"])
        dln2 = lin_back(dfch, c["ln2"], p + "mlp.c_fc.weight", p + "mlp.c_fc.bias")
        dx2_ln, grads[p + "ln_2.weight"], grads[p + "ln_2.bias"] = \
            layernorm_backward(dln2, c["ln2_c"], P[p + "ln_2.weight"])
        dx2 = dx + dx2_ln
        # x2 = x + attn(ln1(x))
        datty = lin_back(dx2, c["atty"], p + "attn.c_proj.weight", p + "attn.c_proj.bias")
        dqkv = attention_backward(datty, c["att_c"])
        dln1 = lin_back(dqkv, c["ln1"], p + "attn.c_attn.weight", p + "attn.c_attn.bias")
        dx_ln, grads[p + "ln_1.weight"], grads[p + "ln_1.bias"] = \
            layernorm_backward(dln1, c["ln1_c"], P[p + "ln_1.weight"])
        dx = dx2 + dx_ln

    dwte_emb, grads["wpe"] = encoder_backward(dx, inputs, P["wte"].shape, P["wpe"].shape)
    grads["wte"] = dwte_emb + dwte_head    # tied: embedding and lm_head contributions add
    return loss_sum, grads


def layer_matrices(cfg, params, row_masks, col_masks):
    """The matrices each Linear uses in the forward (W_fwd) and for dX (W_dx)."""
    W_fwd, W_dx = {}, {}
    for name, shape in param_specs(cfg):
        if not (len(shape) == 2 and name.startswith("h.")):
            continue                       # wte / wpe are not Linear layers
        W = params[name]
        if name not in row_masks:          # dense layer
            W_fwd[name] = W
            W_dx[name] = W
            continue
        WR = W * row_masks[name]           # already pruned; re-masking documents the intent
        W_fwd[name] = WR
        if cfg["mode"] == "slope":
            W_dx[name] = WR * col_masks[name]   # W^{R,C}: stored column mask, current values
        else:
            W_dx[name] = WR                # exact gradient of the masked model
    return W_fwd, W_dx


def step_loss_and_grads(cfg, params, row_masks, col_masks, tokens_step):
    """Mean loss over all gradAccum * batchSize * seqLen target tokens of one optimizer
    step, and its (unclipped) gradient; every micro-batch is scaled by 1 / all tokens."""
    A, B, T1 = tokens_step.shape
    T = T1 - 1
    n_tok = A * B * T
    W_fwd, W_dx = layer_matrices(cfg, params, row_masks, col_masks)
    total_loss = 0.0
    grads = {name: np.zeros(shape) for name, shape in param_specs(cfg)}
    for a in range(A):
        inputs = tokens_step[a, :, :T]
        targets = tokens_step[a, :, 1:]
        loss_sum, g = gpt2_forward_backward(cfg, params, W_fwd, W_dx, row_masks,
                                            inputs, targets, 1.0 / n_tok)
        total_loss += loss_sum
        for name in grads:
            grads[name] += g[name]
    return total_loss / n_tok, grads


# ---------------------------------------------------------------------------------------
# optimizer: schedule, clipping, AdamW
# ---------------------------------------------------------------------------------------

def lr_at(cfg, k):
    """Linear warmup over warmupSteps, then linear decay to minLrRatio * peak (0-based k)."""
    peak, wu, total, r = cfg["peakLr"], cfg["warmupSteps"], cfg["totalSteps"], cfg["minLrRatio"]
    if k < wu:
        return peak * (k + 1) / wu
    return peak * (r + (1.0 - r) * (total - k) / (total - wu))


def clip_grads(cfg, grads):
    """torch.nn.utils.clip_grad_norm_ over ALL gradients. Returns the pre-clip norm."""
    total_norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
    if cfg["gradClip"] > 0:
        coef = cfg["gradClip"] / (total_norm + CLIP_EPS)
        if coef < 1.0:
            for name in grads:
                grads[name] = grads[name] * coef
    return total_norm


class AdamW:
    """torch.optim.AdamW on the kept values only: for a sparse weight the moments and the
    update live on the kept positions (gathered with the row mask), so pruned weights
    are never touched and stay exactly 0."""

    def __init__(self, cfg, specs, row_masks):
        self.cfg = cfg
        self.sel = {name: row_masks.get(name) for name, _ in specs}
        self.wd = {name: cfg["weightDecay"] if decays(shape) else 0.0 for name, shape in specs}
        self.m, self.v = {}, {}
        for name, shape in specs:
            size = int(self.sel[name].sum()) if self.sel[name] is not None else int(np.prod(shape))
            self.m[name] = np.zeros(size)
            self.v[name] = np.zeros(size)

    def step(self, params, grads, lr, t):
        b1, b2, eps = self.cfg["beta1"], self.cfg["beta2"], self.cfg["eps"]
        bc1 = 1.0 - b1 ** t
        bc2 = 1.0 - b2 ** t
        for name in params:
            sel = self.sel[name]
            w = params[name][sel] if sel is not None else params[name].reshape(-1).copy()
            g = grads[name][sel] if sel is not None else grads[name].reshape(-1)
            w = w * (1.0 - lr * self.wd[name])                   # decoupled weight decay
            self.m[name] = b1 * self.m[name] + (1.0 - b1) * g
            self.v[name] = b2 * self.v[name] + (1.0 - b2) * g * g
            w = w - lr * (self.m[name] / bc1) / (np.sqrt(self.v[name] / bc2) + eps)
            if sel is not None:
                out = np.zeros_like(params[name])
                out[sel] = w                                     # scatter back; rest stays 0
                params[name] = out
            else:
                params[name] = w.reshape(params[name].shape)


# ---------------------------------------------------------------------------------------
# training loop
# ---------------------------------------------------------------------------------------

def train(cfg, params0, tokens):
    """Run cfg["steps"] optimizer steps from the dense initial weights params0.
    tokens: int array [steps][gradAccum][batchSize][seqLen + 1].
    Returns a dict with params, losses, last_grads, lrs, grad_norms, row_masks and
    col_masks_used (the column masks of every step; empty dicts unless slope)."""
    validate_config(cfg)
    specs = param_specs(cfg)
    n, m = cfg.get("n"), cfg.get("m")
    params = {name: np.array(params0[name], dtype=np.float64).reshape(shape) for name, shape in specs}

    # row masks: once, from the initial dense weights; the weights are pruned before step 0
    row_masks = {name: row_mask(params[name], n, m) for name in sparse_weight_names(cfg)}
    for name, mask in row_masks.items():
        params[name] = params[name] * mask

    opt = AdamW(cfg, specs, row_masks)
    col_masks = {}
    out = {"losses": [], "lrs": [], "grad_norms": [], "col_masks_used": [], "row_masks": row_masks}
    for k in range(cfg["steps"]):
        if cfg["mode"] == "slope" and k % cfg["columnMaskRefresh"] == 0:
            # refresh: re-select by magnitude of the CURRENT W^R; otherwise the stored
            # mask is reused and applied to the current W^R values
            col_masks = {name: col_mask(params[name], n, m) for name in row_masks}
        out["col_masks_used"].append(dict(col_masks))
        loss, grads = step_loss_and_grads(cfg, params, row_masks, col_masks, tokens[k])
        norm = clip_grads(cfg, grads)
        lr = lr_at(cfg, k)
        opt.step(params, grads, lr, k + 1)
        out["losses"].append(loss)
        out["lrs"].append(lr)
        out["grad_norms"].append(norm)
        out["last_grads"] = grads
    out["params"] = params
    return out


# ---------------------------------------------------------------------------------------
# file I/O and CLI
# ---------------------------------------------------------------------------------------

def read_inputs(in_dir):
    with open(os.path.join(in_dir, "config.json")) as f:
        cfg = json.load(f)
    validate_config(cfg)
    params = {}
    for name, shape in param_specs(cfg):
        path = os.path.join(in_dir, "params", name + ".f64")
        a = np.fromfile(path, dtype="<f8")
        if a.size != int(np.prod(shape)):
            raise ValueError("%s: %d values, expected shape %s" % (path, a.size, shape))
        params[name] = a.astype(np.float64).reshape(shape)
    K, A, B, T = cfg["steps"], cfg["gradAccum"], cfg["batchSize"], cfg["seqLen"]
    tok = np.fromfile(os.path.join(in_dir, "tokens.i32"), dtype="<i4")
    if tok.size != K * A * B * (T + 1):
        raise ValueError("tokens.i32: %d ids, expected %d" % (tok.size, K * A * B * (T + 1)))
    if tok.min() < 0 or tok.max() >= cfg["vocab"]:
        raise ValueError("tokens.i32: ids outside [0, vocab)")
    return cfg, params, tok.astype(np.int64).reshape(K, A, B, T + 1)


def write_outputs(out_dir, cfg, result):
    for sub, tensors in (("params", result["params"]), ("grads", result["last_grads"])):
        os.makedirs(os.path.join(out_dir, sub), exist_ok=True)
        for name, _ in param_specs(cfg):
            np.ascontiguousarray(tensors[name], dtype="<f8").tofile(
                os.path.join(out_dir, sub, name + ".f64"))
    with open(os.path.join(out_dir, "losses.json"), "w") as f:
        json.dump({"losses": [float(x) for x in result["losses"]]}, f)   # repr: exact round trip
    with open(os.path.join(out_dir, "debug.json"), "w") as f:
        json.dump({"lrs": [float(x) for x in result["lrs"]],
                   "gradNorms": [float(x) for x in result["grad_norms"]]}, f)


def main(argv):
    if len(argv) != 3:
        sys.stderr.write("usage: python3 slope_step_oracle.py IN_DIR OUT_DIR\n")
        return 2
    cfg, params, tokens = read_inputs(argv[1])
    result = train(cfg, params, tokens)
    write_outputs(argv[2], cfg, result)
    print("oracle: mode=%s steps=%d losses=%s" % (cfg["mode"], cfg["steps"],
                                                  ["%.10f" % x for x in result["losses"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
