#!/usr/bin/env python3
"""Self-checks for slope_step_oracle.py: evidence that the oracle itself is right.

Run as a plain script (prints 'N passed, N failed', exits non-zero on any failure):
    python3 test_oracle_selfcheck.py
or under pytest:
    python3 -m pytest -q test_oracle_selfcheck.py

What is checked (tiny random model: 2 layers, C=8, 2 heads, T=5, V=11):
  (a) dense and sparse-no-double-prune: analytic gradient of the step loss w.r.t. every
      parameter == central finite differences (normwise rel. error < 1e-6; sparse mode
      perturbs only kept weights, and gradients at pruned positions are exactly 0);
  (b) slope: dX of a sparse layer == dY . W^{R,C} with W^{R,C} built by a separate
      brute-force routine (sort each column group); the model-level backward uses exactly
      those matrices; 2:4 double-pruned density on random 512x512 is 0.40625 +- 0.005;
      support(W^{R,C}) is inside support(W^R);
  (c) after K=3 steps pruned weights are exactly 0 and the row masks are unchanged;
      the column mask is refreshed on the stated steps only;
  (d) a CLI round trip writes every expected output file, equal to the in-process run;
  plus schedule, clipping and AdamW against hand-computed values.
"""

import json
import math
import os
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import slope_step_oracle as oracle  # noqa: E402

FD_TOL = 1e-6


def tiny_config(mode, **over):
    cfg = dict(layers=2, heads=2, dModel=8, seqLen=5, vocab=11, mode=mode, n=2, m=4,
               denseFirstQkv=True, columnMaskRefresh=1, peakLr=1e-2, warmupSteps=1,
               totalSteps=10, minLrRatio=0.1, beta1=0.9, beta2=0.95, eps=1e-8,
               weightDecay=0.1, gradClip=1.0, batchSize=2, gradAccum=2, steps=3)
    cfg.update(over)
    return cfg


def random_params(cfg, seed, scale=0.3):
    """Larger-than-GPT-2 init so every nonlinearity is exercised and gradients are O(1e-2)."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in oracle.param_specs(cfg):
        a = rng.normal(size=shape) * scale
        if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "ln_f.weight":
            a = 1.0 + a
        params[name] = a
    return params


def random_tokens(cfg, seed):
    rng = np.random.default_rng(seed)
    return rng.integers(0, cfg["vocab"], size=(cfg["steps"], cfg["gradAccum"],
                                               cfg["batchSize"], cfg["seqLen"] + 1))


def bruteforce_nm_columns(WR, n, m):
    """Separate, deliberately naive W^{R,C}: for each column i and each group of m rows,
    sort the entries by (-|value|, row index) and keep the first n. No numpy tricks."""
    d_out, d_in = WR.shape
    out = np.zeros_like(WR)
    for i in range(d_in):
        for g in range(d_out // m):
            rows = list(range(g * m, g * m + m))
            rows.sort(key=lambda o: (-abs(WR[o, i]), o))
            for o in rows[:n]:
                out[o, i] = WR[o, i]
    return out


def bruteforce_nm_rows(W, n, m):
    return bruteforce_nm_columns(W.T, n, m).T


def normwise(a, b):
    nb = np.linalg.norm(b)
    return np.linalg.norm(a - b) / (nb if nb > 0 else 1.0)


def prune_like_train(cfg, params):
    """Initial row masks and pruned weights exactly as train() builds them."""
    masks = {name: oracle.row_mask(params[name], cfg["n"], cfg["m"])
             for name in oracle.sparse_weight_names(cfg)}
    pruned = dict(params)
    for name, mk in masks.items():
        pruned[name] = params[name] * mk
    return masks, pruned


# ---------------------------------------------------------------------------------------
# (a) finite differences
# ---------------------------------------------------------------------------------------

def check_fd(mode):
    cfg = tiny_config(mode)
    params = random_params(cfg, seed=1)
    tokens = random_tokens(cfg, seed=2)[0]
    masks, params = prune_like_train(cfg, params) if mode != "dense" else ({}, params)
    _, grads = oracle.step_loss_and_grads(cfg, params, masks, {}, tokens)

    def loss(p):
        return oracle.step_loss_and_grads(cfg, p, masks, {}, tokens)[0]

    h = 1e-5
    worst = 0.0
    for name, shape in oracle.param_specs(cfg):
        fd = np.zeros(shape)
        keep = masks.get(name)
        for idx in np.ndindex(*shape):
            if keep is not None and not keep[idx]:
                continue                   # pruned weight: not a free parameter
            p = dict(params)
            a = params[name].copy()
            a[idx] += h
            p[name] = a
            lp = loss(p)
            a = params[name].copy()
            a[idx] -= h
            p[name] = a
            lm = loss(p)
            fd[idx] = (lp - lm) / (2 * h)
        err = normwise(grads[name], fd)
        worst = max(worst, err)
        assert np.linalg.norm(fd) > 1e-8, "%s: FD gradient vanishes, test is vacuous" % name
        assert err < FD_TOL, "%s %s: analytic vs FD rel. error %.3e" % (mode, name, err)
        if keep is not None:
            assert np.all(grads[name][~keep] == 0.0), "%s: gradient at pruned positions" % name
    return worst


def test_fd_dense():
    check_fd("dense")


def test_fd_sparse_no_double_prune():
    cfg = tiny_config("sparse-no-double-prune")
    # block 0's qkv dense, every other Linear sparse
    assert "h.0.attn.c_attn.weight" not in oracle.sparse_weight_names(cfg)
    assert len(oracle.sparse_weight_names(cfg)) == 7
    check_fd("sparse-no-double-prune")


# ---------------------------------------------------------------------------------------
# forward semantics: finite differences only prove forward/backward consistency, so the
# forward is checked against a separate token-by-token implementation and known values
# ---------------------------------------------------------------------------------------

def naive_step_loss(cfg, P, masks, tokens_step):
    """Mean loss written token by token and head by head with explicit column slices."""
    C, H, V = cfg["dModel"], cfg["heads"], cfg["vocab"]
    hs = C // H

    def w(name):
        return P[name] * masks[name] if name in masks else P[name]

    def ln(v, g, b):
        mu = sum(v) / C
        var = sum((vi - mu) ** 2 for vi in v) / C          # biased variance
        return np.array([(v[i] - mu) / math.sqrt(var + 1e-5) * g[i] + b[i] for i in range(C)])

    def lin(v, W, b):                                      # W is [d_out, d_in]
        return np.array([float(np.dot(W[o], v)) + b[o] for o in range(W.shape[0])])

    def gelu(u):
        return np.array([0.5 * z * (1 + math.tanh(math.sqrt(2 / math.pi) * (z + 0.044715 * z ** 3)))
                         for z in u])

    total, count = 0.0, 0
    A, B, T1 = tokens_step.shape
    for a in range(A):
        for b in range(B):
            seq = tokens_step[a, b]
            xs = [P["wte"][seq[t]] + P["wpe"][t] for t in range(T1 - 1)]
            for l in range(cfg["layers"]):
                p = "h.%d." % l
                qkv = [lin(ln(x, P[p + "ln_1.weight"], P[p + "ln_1.bias"]),
                           w(p + "attn.c_attn.weight"), P[p + "attn.c_attn.bias"]) for x in xs]
                new = []
                for t in range(len(xs)):
                    y = np.zeros(C)
                    for h in range(H):
                        q = qkv[t][h * hs:(h + 1) * hs]
                        sc = [float(np.dot(q, qkv[s][C + h * hs:C + (h + 1) * hs])) / math.sqrt(hs)
                              for s in range(t + 1)]                       # causal: s <= t
                        mx = max(sc)
                        e = [math.exp(z - mx) for z in sc]
                        for s in range(t + 1):
                            y[h * hs:(h + 1) * hs] += e[s] / sum(e) * qkv[s][2 * C + h * hs:2 * C + (h + 1) * hs]
                    x2 = xs[t] + lin(y, w(p + "attn.c_proj.weight"), P[p + "attn.c_proj.bias"])
                    f = gelu(lin(ln(x2, P[p + "ln_2.weight"], P[p + "ln_2.bias"]),
                                 w(p + "mlp.c_fc.weight"), P[p + "mlp.c_fc.bias"]))
                    new.append(x2 + lin(f, w(p + "mlp.c_proj.weight"), P[p + "mlp.c_proj.bias"]))
                xs = new
            for t, x in enumerate(xs):
                logits = [float(np.dot(P["wte"][v], ln(x, P["ln_f.weight"], P["ln_f.bias"]))) for v in range(V)]
                mx = max(logits)
                total += -(logits[seq[t + 1]] - mx - math.log(sum(math.exp(z - mx) for z in logits)))
                count += 1
    return total / count


def test_forward_matches_naive_token_loop():
    for mode in ("dense", "slope"):
        cfg = tiny_config(mode, denseFirstQkv=False)
        params = random_params(cfg, seed=14)
        tokens = random_tokens(cfg, seed=15)[0]
        masks, params = prune_like_train(cfg, params) if mode != "dense" else ({}, params)
        cols = {nm: oracle.col_mask(params[nm], 2, 4) for nm in masks}
        loss, _ = oracle.step_loss_and_grads(cfg, params, masks, cols, tokens)
        ref = naive_step_loss(cfg, params, masks, tokens)
        assert abs(loss - ref) < 1e-12 * abs(ref), (mode, loss, ref)


def test_known_values():
    # HF gelu_new / torch gelu(approximate='tanh') at 1 and -1; the erf GELU would give 0.8413447
    g = oracle.gelu_forward(np.array([1.0, -1.0, 0.0]))
    assert abs(g[0] - 0.8411919906082768) < 1e-15 and abs(g[1] + 0.15880800939172324) < 1e-15 and g[2] == 0
    # LayerNorm eps 1e-5 with the biased variance: [1, -1] has var 1 -> 1/sqrt(1 + 1e-5)
    y, _ = oracle.layernorm_forward(np.array([1.0, -1.0]), np.ones(2), np.zeros(2))
    assert abs(y[0] - 1 / math.sqrt(1 + 1e-5)) < 1e-15
    # uniform logits: loss = log(V)
    cfg = tiny_config("dense")
    P = {nm: np.zeros(s) for nm, s in oracle.param_specs(cfg)}
    loss, _ = oracle.step_loss_and_grads(cfg, P, {}, {}, random_tokens(cfg, 16)[0])
    assert abs(loss - math.log(11)) < 1e-15


def test_sparse_layer_sets():
    assert oracle.sparse_weight_names(tiny_config("dense")) == []
    s = oracle.sparse_weight_names(tiny_config("slope", denseFirstQkv=False))
    assert len(s) == 8 and "h.0.attn.c_attn.weight" in s
    assert all(nm.endswith(".weight") and ("c_attn" in nm or "c_proj" in nm or "c_fc" in nm) for nm in s)


# ---------------------------------------------------------------------------------------
# (b) double pruning
# ---------------------------------------------------------------------------------------

def test_nm_masks_match_bruteforce_with_ties():
    rng = np.random.default_rng(3)
    for n, m in ((2, 4), (1, 2), (2, 8), (3, 4), (1, 4)):
        for W in (rng.normal(size=(16, 24)),
                  rng.integers(-2, 3, size=(16, 24)).astype(float)):   # many ties and zeros
            rm = oracle.row_mask(W, n, m)
            assert np.array_equal(W * rm, bruteforce_nm_rows(W, n, m)), (n, m)
            assert np.all(rm.reshape(16, -1, m).sum(axis=-1) == n)
            WR = W * rm
            cm = oracle.col_mask(WR, n, m)
            assert np.array_equal(WR * cm, bruteforce_nm_columns(WR, n, m)), (n, m)
    # explicit tie example: equal magnitudes keep the lower index
    W = np.array([[1.0, -1.0, 1.0, 0.5]])
    assert oracle.row_mask(W, 2, 4).tolist() == [[True, True, False, False]]


def test_slope_layer_dx_is_double_pruned():
    rng = np.random.default_rng(4)
    d_out, d_in, n, m = 16, 12, 2, 4
    W = rng.normal(size=(d_out, d_in))
    WR = W * oracle.row_mask(W, n, m)
    WRC_brute = bruteforce_nm_columns(WR, n, m)
    X = rng.normal(size=(2, 3, d_in))
    dY = rng.normal(size=(2, 3, d_out))
    WRC_oracle = WR * oracle.col_mask(WR, n, m)   # as layer_matrices builds it in slope mode
    dX, dW, db = oracle.linear_backward(dY, X, WRC_oracle, oracle.row_mask(W, n, m))
    assert normwise(dX, dY @ WRC_brute) < 1e-14
    assert not np.allclose(dX, dY @ WR), "double pruning changed nothing: vacuous test"
    assert np.array_equal(dW, (dY.reshape(-1, d_out).T @ X.reshape(-1, d_in)) * (WR != 0))
    assert np.allclose(db, dY.reshape(-1, d_out).sum(axis=0))


def test_slope_model_backward_uses_bruteforce_WRC():
    """Model level: slope-mode gradients equal the gradients obtained when the dX matrices
    are replaced by the brute-force W^{R,C}; and they differ from the exact gradient only
    where a dX path through a sparse layer is involved."""
    cfg = tiny_config("slope")
    params = random_params(cfg, seed=5)
    tokens = random_tokens(cfg, seed=6)[0]
    masks, params = prune_like_train(cfg, params)
    cols = {name: oracle.col_mask(params[name], 2, 4) for name in masks}
    loss_s, g_slope = oracle.step_loss_and_grads(cfg, params, masks, cols, tokens)

    W_fwd, W_dx = oracle.layer_matrices(cfg, params, masks, cols)
    for name in masks:
        assert np.array_equal(W_dx[name], bruteforce_nm_columns(params[name], 2, 4)), name
    assert np.array_equal(W_dx["h.0.attn.c_attn.weight"], params["h.0.attn.c_attn.weight"])

    cfg_exact = tiny_config("sparse-no-double-prune")
    loss_e, g_exact = oracle.step_loss_and_grads(cfg_exact, params, masks, {}, tokens)
    assert loss_s == loss_e                        # forward is identical
    # the last block's mlp.c_proj and ln_f see no dX of a sparse layer downstream
    for name in ("ln_f.weight", "ln_f.bias", "h.1.mlp.c_proj.weight", "h.1.mlp.c_proj.bias"):
        assert np.array_equal(g_slope[name], g_exact[name]), name
    # mlp.c_fc's dY passes through mlp.c_proj's dX, which double pruning changes
    assert normwise(g_slope["h.1.mlp.c_fc.weight"], g_exact["h.1.mlp.c_fc.weight"]) > 1e-3


def test_double_prune_density_and_support_512():
    rng = np.random.default_rng(7)
    W = rng.normal(size=(512, 512))
    WR = W * oracle.row_mask(W, 2, 4)
    WRC = WR * oracle.col_mask(WR, 2, 4)
    assert np.count_nonzero(WR) == 512 * 256
    dens = np.count_nonzero(WRC) / WRC.size
    assert abs(dens - 0.40625) <= 0.005, dens
    assert np.all((WRC != 0) <= (WR != 0)), "W^{R,C} has a nonzero outside W^R's support"
    assert np.array_equal(WRC, bruteforce_nm_columns(WR, 2, 4))


# ---------------------------------------------------------------------------------------
# (c) several steps
# ---------------------------------------------------------------------------------------

def check_steps_keep_sparsity(mode, refresh):
    cfg = tiny_config(mode, columnMaskRefresh=refresh)
    params0 = random_params(cfg, seed=8)
    res = oracle.train(cfg, params0, random_tokens(cfg, seed=9))
    assert len(res["losses"]) == 3 and all(np.isfinite(res["losses"]))
    for name in oracle.sparse_weight_names(cfg):
        mask0 = oracle.row_mask(params0[name], 2, 4)
        W = res["params"][name]
        assert np.array_equal(res["row_masks"][name], mask0), name
        assert np.all(W[~mask0] == 0.0), "%s: pruned weight became nonzero" % name
        assert np.all(W[mask0] != 0.0), name
        assert np.array_equal(oracle.row_mask(W, 2, 4), mask0), "%s: row mask changed" % name
        assert not np.array_equal(W[mask0], params0[name][mask0]), "%s: not trained" % name
        assert np.all(res["last_grads"][name][~mask0] == 0.0)
    # dense parameters all moved
    assert not np.array_equal(res["params"]["h.0.attn.c_attn.weight"], params0["h.0.attn.c_attn.weight"])


def test_three_steps_sparse_no_double_prune():
    check_steps_keep_sparsity("sparse-no-double-prune", 1)


def test_three_steps_slope():
    check_steps_keep_sparsity("slope", 1)
    check_steps_keep_sparsity("slope", 2)


def test_column_mask_refresh_schedule():
    for refresh in (1, 2):
        cfg = tiny_config("slope", columnMaskRefresh=refresh, steps=3)
        params0 = random_params(cfg, seed=10)
        tokens = random_tokens(cfg, seed=11)
        res = oracle.train(cfg, params0, tokens)
        used = res["col_masks_used"]
        for k in range(3):
            # weights before step k = result of a k-step run (k = 0: pruned initial weights)
            if k == 0:
                before = {nm: params0[nm] * res["row_masks"][nm] for nm in res["row_masks"]}
            else:
                before = oracle.train(dict(cfg, steps=k), params0, tokens[:k])["params"]
            src = k - (k % refresh)                      # step of the last refresh
            if src != k:
                for nm in used[k]:
                    assert np.array_equal(used[k][nm], used[src][nm]), (refresh, k, nm)
            else:
                for nm in used[k]:
                    assert np.array_equal(used[k][nm], oracle.col_mask(before[nm], 2, 4)), (refresh, k, nm)


# ---------------------------------------------------------------------------------------
# optimizer pieces against hand-computed values
# ---------------------------------------------------------------------------------------

def test_lr_schedule():
    cfg = dict(peakLr=1.0, warmupSteps=4, totalSteps=14, minLrRatio=0.1)
    assert [oracle.lr_at(cfg, k) for k in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert math.isclose(oracle.lr_at(cfg, 4), 0.1 + 0.9 * 10 / 10)
    assert math.isclose(oracle.lr_at(cfg, 9), 0.1 + 0.9 * 5 / 10)
    assert math.isclose(oracle.lr_at(cfg, 14), 0.1)
    assert oracle.lr_at(dict(cfg, warmupSteps=0), 0) == 1.0


def test_clip():
    cfg = {"gradClip": 1.0}
    g = {"a": np.array([3.0]), "b": np.array([[4.0]])}
    assert oracle.clip_grads(cfg, g) == 5.0
    assert math.isclose(g["a"][0], 3.0 / (5.0 + 1e-6)) and math.isclose(g["b"][0, 0], 4.0 / (5.0 + 1e-6))
    g = {"a": np.array([0.3]), "b": np.array([[0.4]])}
    oracle.clip_grads(cfg, g)                     # norm 0.5: coef > 1, untouched
    assert g["a"][0] == 0.3 and g["b"][0, 0] == 0.4
    g = {"a": np.array([30.0])}
    oracle.clip_grads({"gradClip": 0.0}, g)       # clipping off
    assert g["a"][0] == 30.0


def test_adamw_matches_hand_rolled():
    cfg = dict(beta1=0.9, beta2=0.95, eps=1e-8, weightDecay=0.1)
    specs = [("mat", (1, 4)), ("bias", (2,))]
    keep = np.array([[True, False, True, False]])
    opt = oracle.AdamW(cfg, specs, {"mat": keep})
    params = {"mat": np.array([[0.5, 0.0, -0.25, 0.0]]), "bias": np.array([0.1, -0.2])}
    grads_seq = [{"mat": np.array([[0.2, 0.0, -0.1, 0.0]]), "bias": np.array([0.05, 0.3])},
                 {"mat": np.array([[-0.1, 0.0, 0.4, 0.0]]), "bias": np.array([-0.2, 0.1])}]
    lrs = [0.01, 0.02]
    # scalar reference, written out per element
    ref = {("mat", 0): 0.5, ("mat", 2): -0.25, ("bias", 0): 0.1, ("bias", 1): -0.2}
    mom = {key: (0.0, 0.0) for key in ref}
    for t, (g, lr) in enumerate(zip(grads_seq, lrs), start=1):
        opt.step(params, g, lr, t)
        for (nm, i), w in ref.items():
            gi = g[nm].reshape(-1)[i]
            wd = 0.1 if nm == "mat" else 0.0
            m, v = mom[(nm, i)]
            w = w * (1 - lr * wd)
            m = 0.9 * m + 0.1 * gi
            v = 0.95 * v + 0.05 * gi * gi
            w = w - lr * (m / (1 - 0.9 ** t)) / (math.sqrt(v / (1 - 0.95 ** t)) + 1e-8)
            ref[(nm, i)], mom[(nm, i)] = w, (m, v)
    for (nm, i), w in ref.items():
        assert math.isclose(params[nm].reshape(-1)[i], w, rel_tol=1e-14), (nm, i)
    assert params["mat"][0, 1] == 0.0 and params["mat"][0, 3] == 0.0
    assert opt.m["mat"].shape == (2,)             # moments only at kept positions


# ---------------------------------------------------------------------------------------
# (d) CLI round trip
# ---------------------------------------------------------------------------------------

def test_cli_round_trip():
    cfg = tiny_config("slope", columnMaskRefresh=2)
    params = random_params(cfg, seed=12, scale=0.02)
    tokens = random_tokens(cfg, seed=13)
    with tempfile.TemporaryDirectory() as tmp:
        ind, outd = os.path.join(tmp, "in"), os.path.join(tmp, "out")
        os.makedirs(os.path.join(ind, "params"))
        with open(os.path.join(ind, "config.json"), "w") as f:
            json.dump(cfg, f)
        for name, _ in oracle.param_specs(cfg):
            params[name].astype("<f8").tofile(os.path.join(ind, "params", name + ".f64"))
        tokens.astype("<i4").tofile(os.path.join(ind, "tokens.i32"))
        proc = subprocess.run([sys.executable, os.path.join(HERE, "slope_step_oracle.py"), ind, outd],
                              capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0, proc.stderr
        expected = oracle.train(cfg, params, tokens)
        with open(os.path.join(outd, "losses.json")) as f:
            losses = json.load(f)["losses"]
        assert losses == [float(x) for x in expected["losses"]]
        with open(os.path.join(outd, "debug.json")) as f:
            dbg = json.load(f)
        assert len(dbg["lrs"]) == 3 and len(dbg["gradNorms"]) == 3
        for sub, ref in (("params", expected["params"]), ("grads", expected["last_grads"])):
            for name, shape in oracle.param_specs(cfg):
                path = os.path.join(outd, sub, name + ".f64")
                assert os.path.isfile(path), path
                a = np.fromfile(path, dtype="<f8")
                assert a.size == int(np.prod(shape)), path
                assert np.array_equal(a.reshape(shape), ref[name]), path
        n_files = sum(len(fs) for _, _, fs in os.walk(outd))
        assert n_files == 2 * len(oracle.param_specs(cfg)) + 2, n_files


# ---------------------------------------------------------------------------------------
# plain-script runner
# ---------------------------------------------------------------------------------------

def main():
    tests = [(k, v) for k, v in sorted(globals().items()) if k.startswith("test_") and callable(v)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print("PASS", name)
        except Exception as e:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print("FAIL %s: %s: %s" % (name, type(e).__name__, e))
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
