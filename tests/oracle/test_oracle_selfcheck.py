#!/usr/bin/env python3
"""Self-checks of the PyTorch oracle (tests/oracle/torch_reference.py), on tiny random checkpoints.

    /usr/bin/python3 tests/oracle/test_oracle_selfcheck.py      # prints 'N passed, M failed'

(a) the standard plan equals a second, vectorised computation (scaled_dot_product_attention with
    is_causal=True, GQA by expansion, RoPE via complex numbers) in float64 to 1e-12;
(b) causality: the first n rows of a prefill of n+1 tokens equal the prefill of n tokens, for
    standard, cla-like, downward and sliding maps (and upward maps in their exact modes);
(c) upward maps: iterative prefill with passes >= T equals token-by-token in float64 (1e-12), and
    with r < T passes the first r rows are equal (the exactness theorem of spec section 3);
(d) bottom-target plans: iterative prefill equals a single pass and token-by-token encoding;
plus plan facts, the safetensors reader (F16/BF16), the command line, and bad input.
"""

import contextlib
import itertools
import io
import math
import os
import subprocess
import sys
import tempfile
import traceback
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_checkpoint as mc  # noqa: E402
import torch_reference as ref  # noqa: E402

torch.set_num_threads(1)
TMP = tempfile.mkdtemp(prefix="kvlab-oracle-")
TOKENS = [3, 17, 5, 42, 0, 63, 8, 21]  # T = 8, all < vocab 64
_counter = [0]


def checkpoint(**kw):
    """A fresh tiny checkpoint directory (make_checkpoint defaults: L=4, C=32, H=4, H_kv=2)."""
    _counter[0] += 1
    return mc.make_checkpoint(os.path.join(TMP, f"ck{_counter[0]}"), **kw)


def rel_err(a, b):
    """max |a - b| / max |b| over all elements."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-300)).item()


def assert_close(a, b, tol, what):
    e = rel_err(a, b)
    assert e <= tol, f"{what}: relative error {e:.3e} > {tol:.0e}"


# ---------------------------------------------------------------------------------------------
# (a) a second, vectorised forward for the standard plan
# ---------------------------------------------------------------------------------------------

def sdpa_causal(q, k, v):
    """q, k, v: (H, T, D) -> (H, T, D), causal, through PyTorch's fused attention entry point."""
    if hasattr(F, "scaled_dot_product_attention"):
        return F.scaled_dot_product_attention(q, k, v, is_causal=True)
    return F._scaled_dot_product_attention(q, k, v, is_causal=True)[0]  # torch 1.13 name


def rope_complex(x, theta):
    """x: (heads, T, D), Hugging Face pairing written as a complex rotation of (x_i, x_{i+D/2})."""
    heads, T, D = x.shape
    freq = theta ** (-torch.arange(0, D, 2, dtype=torch.float64) / D)            # (D/2,)
    phase = torch.polar(torch.ones(T, D // 2, dtype=torch.float64),
                        torch.arange(T, dtype=torch.float64)[:, None] * freq)    # (T, D/2)
    z = torch.complex(x[..., : D // 2].double(), x[..., D // 2:].double()) * phase
    return torch.cat([z.real, z.imag], dim=-1).to(x.dtype)


def vectorised_standard_forward(m, tokens):
    """Standard plan only, every head at once: (T, V)."""
    T, H, H_kv, D = len(tokens), m.H, m.H_kv, m.D
    w = lambda name: m.w[name]  # noqa: E731

    def norm(x, weight):
        return x / torch.sqrt((x * x).sum(-1, keepdim=True) / x.shape[-1] + m.eps) * weight

    x = w("model.embed_tokens.weight")[tokens]                                  # (T, C)
    for l in range(m.L):
        p = f"model.layers.{l}."
        h = norm(x, w(p + "input_layernorm.weight"))
        q = (h @ w(p + "self_attn.q_proj.weight").T).view(T, H, D).transpose(0, 1)      # (H, T, D)
        k = (h @ w(p + "self_attn.k_proj.weight").T).view(T, H_kv, D).transpose(0, 1)   # (H_kv, T, D)
        v = (h @ w(p + "self_attn.v_proj.weight").T).view(T, H_kv, D).transpose(0, 1)
        q, k = rope_complex(q, m.theta), rope_complex(k, m.theta)
        k = k[:, None].expand(H_kv, H // H_kv, T, D).reshape(H, T, D)          # GQA expansion
        v = v[:, None].expand(H_kv, H // H_kv, T, D).reshape(H, T, D)
        a = sdpa_causal(q, k, v).transpose(0, 1).reshape(T, H * D)
        x = x + a @ w(p + "self_attn.o_proj.weight").T
        h = norm(x, w(p + "post_attention_layernorm.weight"))
        g = F.silu(h @ w(p + "mlp.gate_proj.weight").T) * (h @ w(p + "mlp.up_proj.weight").T)
        x = x + g @ w(p + "mlp.down_proj.weight").T
    return norm(x, w("model.norm.weight")) @ w("lm_head.weight").T


def test_a_standard_matches_vectorised_sdpa():
    shapes = [dict(heads=4, kv_heads=4),                        # MHA
              dict(heads=4, kv_heads=2),                        # GQA
              dict(heads=4, kv_heads=1, tied=True),             # MQA, tied classifier
              dict(hidden=24, heads=4, kv_heads=2, head_dim=8, rope_theta=500.0)]  # D != C/H
    for i, kw in enumerate(shapes):
        d = checkpoint(seed=10 + i, **kw)
        m = ref.load_model(d, "f64")
        with torch.no_grad():
            expected = vectorised_standard_forward(m, TOKENS)
        assert_close(ref.forward(m, TOKENS), expected, 1e-12, f"f64 {kw}")
        m32 = ref.load_model(d, "f32")
        got32 = ref.forward(m32, TOKENS)
        assert got32.dtype == torch.float32
        assert_close(got32, expected, 1e-5, f"f32 {kw}")


def test_a_rope_pairs_i_with_i_plus_half():
    x = torch.zeros(1, 1, 8, dtype=torch.float64)
    x[0, 0, 1] = 1.0                                    # dim 1 rotates into dim 1 + 4 = 5
    cos, sin = ref.rope_cos_sin(torch.tensor([3]), 8, 10000.0, torch.float64)
    y = ref.apply_rope(x, cos, sin)[0, 0]
    angle = 3 * 10000.0 ** (-2 / 8)
    assert abs(y[1] - math.cos(angle)) < 1e-15 and abs(y[5] - math.sin(angle)) < 1e-15, y
    assert y[[0, 2, 3, 4, 6, 7]].abs().max() == 0


# ---------------------------------------------------------------------------------------------
# (b) causality: prefix invariance
# ---------------------------------------------------------------------------------------------

def check_prefix_invariance(m, mode="auto", passes=None, nodiag=False, what=""):
    full = ref.forward(m, TOKENS, mode, passes, nodiag)
    for n in range(1, len(TOKENS)):
        part = ref.forward(m, TOKENS[:n], mode, passes, nodiag)
        assert_close(full[:n], part, 1e-12, f"{what} prefix {n}")


def test_b_causality_downward_and_sliding():
    cases = [("0_1_2_3", {}), ("0_0_2_2", {}), ("0_1_1_0", {}), ("0_0_0_0", dict(kv_heads=1)),
             ("0s_1s_2_2", dict(sliding_window=3)), ("0s_0s_2s_2", dict(sliding_window=2))]
    for plan, kw in cases:
        m = ref.load_model(checkpoint(plan=plan, seed=20, **kw), "f64")
        check_prefix_invariance(m, what=plan)
        check_prefix_invariance(m, nodiag=True, what=plan + " nodiag")
        # one parallel pass equals decoding token by token with a cache
        assert_close(ref.forward(m, TOKENS, "token-by-token"), ref.forward(m, TOKENS), 1e-12,
                     f"{plan} token-by-token")


def test_b_causality_upward_exact_modes():
    m = ref.load_model(checkpoint(layers=5, plan="0_3_3_3_4", seed=21), "f64")
    check_prefix_invariance(m, mode="token-by-token", what="0_3_3_3_4 token-by-token")
    check_prefix_invariance(m, mode="iterative", passes=len(TOKENS), what="0_3_3_3_4 T passes")


def test_b_sliding_window_semantics():
    d_slide = checkpoint(plan="0s_1s_2s_3s", sliding_window=3, seed=22)
    wide = ref.load_model(checkpoint(plan="0s_1s_2s_3s", sliding_window=len(TOKENS), seed=22), "f64")
    full = ref.load_model(checkpoint(plan="0_1_2_3", seed=22), "f64")
    narrow = ref.load_model(d_slide, "f64")
    assert_close(ref.forward(wide, TOKENS), ref.forward(full, TOKENS), 0, "window >= T")
    out_n, out_f = ref.forward(narrow, TOKENS), ref.forward(full, TOKENS)
    assert_close(out_n[:3], out_f[:3], 0, "rows inside the window")
    assert rel_err(out_n[3:], out_f[3:]) > 1e-6, "a window of 3 must change rows 3.."
    # the set itself: j in (i - W, i]
    allowed = ref.attention_set(torch.arange(5), torch.arange(5), False, True, 2, False)
    assert allowed.tolist() == [[j <= i and j > i - 2 for j in range(5)] for i in range(5)]


# ---------------------------------------------------------------------------------------------
# (c) upward maps: the exactness theorem
# ---------------------------------------------------------------------------------------------

UPWARD = [(5, "0_3_3_3_4", {}),              # one block [1, 3]
          (6, "0_5_3_3_3_5", {}),            # block [1, 5]; layer 4 reads 3 within the pass
          (6, "0_2_2_4_4_5", {}),            # two blocks [1, 2] and [3, 4]
          (5, "0s_3s_3_3_4", dict(sliding_window=2)),
          (4, "3_3_3_3", dict(kv_heads=1, tied=True))]   # lckv-like: even layer 0 reads upward


def test_c_iterative_equals_token_by_token():
    T = len(TOKENS)
    for layers, plan, kw in UPWARD:
        for nodiag in (False, True):
            m = ref.load_model(checkpoint(layers=layers, plan=plan, seed=30, **kw), "f64")
            exact = ref.forward(m, TOKENS, "token-by-token", force_nodiag=nodiag)
            what = f"{plan} nodiag={nodiag}"
            for r in (T, T + 2):
                got = ref.forward(m, TOKENS, "iterative", r, nodiag)
                assert_close(got, exact, 1e-12, f"{what} {r} passes")
            for r in range(1, T):
                got = ref.forward(m, TOKENS, "iterative", r, nodiag)
                assert_close(got[:r], exact[:r], 1e-12, f"{what} {r} passes, first {r} rows")
                assert rel_err(got[r:], exact[r:]) > 1e-9, f"{what}: {r} passes already exact?"
            # auto: T <= 9 goes token by token; with fewer default passes it iterates
            assert_close(ref.forward(m, TOKENS, "auto", force_nodiag=nodiag), exact, 0, what)
            auto3 = ref.forward(m, TOKENS, "auto", 3, nodiag)
            assert_close(auto3, ref.forward(m, TOKENS, "iterative", 3, nodiag), 0, what)


def test_c_first_pass_reads_zero_kv():
    """Targets' K/V start as zeros, so in pass 1 every upward reader adds exactly nothing: one
    pass equals the exact model with the upward readers' W_O set to zero."""
    d = checkpoint(layers=5, plan="0_3_3_3_4", seed=31)
    one_pass = ref.forward(ref.load_model(d, "f64"), TOKENS, "iterative", 1)
    silenced = ref.load_model(d, "f64")
    for l in (1, 2):                                     # the upward readers of layer 3
        w = silenced.w[f"model.layers.{l}.self_attn.o_proj.weight"]
        silenced.w[f"model.layers.{l}.self_attn.o_proj.weight"] = torch.zeros_like(w)
    assert_close(one_pass, ref.forward(silenced, TOKENS, "token-by-token"), 1e-12, "pass 1")


def test_c_first_token_of_upward_layer_reads_nothing():
    q = torch.randn(3, 2, 4, dtype=torch.float64)
    k = torch.randn(3, 1, 4, dtype=torch.float64)
    allowed = ref.attention_set(torch.arange(3), torch.arange(3), True, False, 4096, False)
    out = ref.attention(q, k, k, allowed)
    assert torch.all(out[0] == 0) and torch.all(torch.isfinite(out)), out


def test_c_plan_facts():
    lckv = "0_" + "_".join(["20"] * 20) + "_21"
    assert ref.cyclic_blocks(ref.parse_plan(lckv, 22)) == [(1, 20)]
    assert ref.cyclic_blocks(ref.parse_plan("0_3_3_3_4", 5)) == [(1, 3)]
    assert ref.cyclic_blocks(ref.parse_plan("0_2_2_4_4_5", 6)) == [(1, 2), (3, 4)]
    assert ref.cyclic_blocks(ref.parse_plan("0_3_2_3_2", 5)) == [(1, 3)]
    assert ref.layer_segments(ref.parse_plan("0_3_3_3_4", 5)) == [(0, 0, False), (1, 3, True),
                                                                  (4, 4, False)]
    assert ref.cyclic_blocks(ref.parse_plan("0_0_2_2", 4)) == []
    try:
        ref.parse_plan("0_2_1_3", 4)
        raise AssertionError("0_2_1_3 must be rejected")
    except ref.OracleError as e:
        assert "layer 1 reads layer 2" in str(e), e


# ---------------------------------------------------------------------------------------------
# (d) bottom-target plans take one pass
# ---------------------------------------------------------------------------------------------

def test_d_bottom_target_is_one_pass():
    for plan, kw in (("0_0_2_2", {}), ("0s_1s_2_2", dict(sliding_window=3)), ("0_0_0_3", {})):
        m = ref.load_model(checkpoint(plan=plan, seed=40, **kw), "f64")
        one = ref.forward(m, TOKENS, "iterative", 1)
        assert_close(ref.forward(m, TOKENS, "iterative", 9), one, 0, f"{plan} 9 passes")
        assert_close(ref.forward(m, TOKENS, "auto"), one, 0, f"{plan} auto")
        assert_close(ref.forward(m, TOKENS, "token-by-token"), one, 1e-12, f"{plan} tbt")


# ---------------------------------------------------------------------------------------------
# (e) decode: policies, position modes, SqueezeAttention (spec sections 5, 6)
# ---------------------------------------------------------------------------------------------

LONG = TOKENS + [9, 11, 13, 2, 60, 7]  # T = 14
FULL = ref.parse_policy("full")


def test_e_full_decode_equals_prefill():
    """Spec section 2: decoding token t after a prefill of t tokens equals a prefill of t + 1."""
    cases = [(4, "0_1_2_3", {}), (4, "0_0_2_2", {}), (4, "0_0_0_3", dict(kv_heads=1)),
             (4, "0s_1s_1s_3", dict(sliding_window=3)), (5, "0_3_3_3_4", {}),
             (6, "0_2_2_4_4_5", {})]
    for layers, plan, kw in cases:
        m = ref.load_model(checkpoint(layers=layers, plan=plan, seed=80, **kw), "f64")
        exact = ref.forward(m, LONG, "token-by-token")
        for P in (1, 5, len(LONG)):
            got = ref.decode(m, LONG, P, FULL, mode="token-by-token")
            assert_close(got, exact, 1e-12, f"{plan} decode from {P}")
            # an iterative prefill with P passes is exact, so the decode rows are too
            got = ref.decode(m, LONG, P, FULL, mode="iterative", passes=P)
            assert_close(got, exact, 1e-12, f"{plan} decode from {P} after {P} passes")
        if m.plan.has_upward_edges():
            # fewer passes: the prompt's K/V are inexact and the decode rows inherit that
            got = ref.decode(m, LONG, 8, FULL, mode="iterative", passes=2)
            assert_close(got[:8], ref.forward(m, LONG[:8], "iterative", 2), 1e-12, plan)
            assert rel_err(got[8:], exact[8:]) > 1e-9, f"{plan}: 2 passes already exact?"


def test_e_no_eviction_under_large_budgets():
    """A budget >= T keeps everything: every policy, either position mode, equals full."""
    for layers, plan in ((4, "0_0_2_2"), (5, "0_3_3_3_4")):
        m = ref.load_model(checkpoint(layers=layers, plan=plan, seed=81), "f64")
        full = ref.decode(m, LONG, 6, FULL)
        for policy in ("window", "streaming:2", "h2o", "h2o:1"):
            for positions in ("absolute", "cache"):
                got = ref.decode(m, LONG, 6, ref.parse_policy(policy, positions),
                                 ref.parse_budget(str(len(LONG))))
                assert_close(got, full, 1e-12, f"{plan} {policy} {positions}")


def test_e_window_policy_is_a_sliding_window_for_decoded_tokens():
    """From a one-token prompt, window B keeps the B most recent cells between steps, so token i
    attends to i-B..i: a model whose layers are all sliding with window B + 1."""
    B = 3
    windowed = ref.load_model(checkpoint(plan="0_0_2_3", seed=82), "f64")
    sliding = ref.load_model(checkpoint(plan="0s_0s_2s_3s", sliding_window=B + 1, seed=82), "f64")
    expected = ref.forward(sliding, LONG)
    for positions in ("absolute", "cache"):
        # the kept cells are contiguous, so slot differences equal position differences and
        # pos-shift changes nothing (RoPE scores depend on i - j only)
        got = ref.decode(windowed, LONG, 1, ref.parse_policy("window", positions),
                         ref.parse_budget(str(B)))
        assert_close(got, expected, 1e-12, f"window = sliding window, {positions} positions")
    # streaming's sinks leave a gap that pos-shift closes: there the modes differ
    a, c = (ref.decode(windowed, LONG, 1, ref.parse_policy("streaming:1", positions),
                       ref.parse_budget(str(B))) for positions in ("absolute", "cache"))
    assert_close(a[:B + 1], c[:B + 1], 1e-12, "streaming before any eviction")
    assert rel_err(a[B + 2:], c[B + 2:]) > 1e-9, "pos-shift had no effect"


def test_e_select_cells_rules():
    pos = [0, 1, 2, 3, 4, 5, 6, 7]
    score = [5.0, 0.1, 9.0, 0.2, 3.0, 0.3, 0.0, 0.0]
    P = ref.parse_policy
    assert ref.select_cells(P("window"), 3, pos, score) == [5, 6, 7]
    assert ref.select_cells(P("streaming:2"), 5, pos, score) == [0, 1, 5, 6, 7]
    assert ref.select_cells(P("streaming"), 5, pos, score) == [0, 1, 2, 3, 7]  # 4 sinks
    assert ref.select_cells(P("h2o"), 4, pos, score) == [0, 2, 6, 7]           # R = 2
    assert ref.select_cells(P("h2o:1"), 4, pos, score) == [0, 2, 4, 7]
    assert ref.select_cells(P("h2o:0"), 2, pos, [1.0] * 8) == [0, 1]           # ties: older
    assert ref.select_cells(P("h2o"), 8, pos, score) == list(range(8))
    # cells need not be in position order for the rules
    assert ref.select_cells(P("window"), 2, [4, 9, 2], [0.0] * 3) == [0, 1]


def test_e_h2o_scores_sum_over_readers():
    """Each query row hands out probability 1 per query head, so before any eviction a bank's
    scores per KV head sum to (rows x heads of the group) over every reader layer."""
    m = ref.load_model(checkpoint(plan="0_0_0_3", heads=4, kv_heads=2, seed=83), "f64")
    bank = ref.Bank(m, 0, True, False, True)
    hooks = ref.PrefillHooks()
    ref.iterative_prefill(m, TOKENS, 1, False, hooks)
    bank.append(hooks.kv[0][0], hooks.kv[0][1], torch.arange(len(TOKENS)))
    for l in (0, 1, 2):
        bank.add_scores(hooks.probs[l].sum(dim=1))
    assert torch.allclose(bank.score.sum(dim=1), torch.full((2,), 3.0 * 2 * len(TOKENS),
                                                            dtype=torch.float64)), bank.score


def test_e_kmeans_is_the_global_optimum():
    gen = torch.Generator().manual_seed(84)
    for n in (3, 4, 5, 6, 7):
        for _ in range(20):
            values = torch.rand(n, generator=gen, dtype=torch.float64).tolist()
            labels = ref.kmeans3_exact(values)

            def cost(lab):
                total = 0.0
                for c in (1, 2, 3):
                    part = [v for v, x in zip(values, lab) if x == c]
                    if not part:
                        return math.inf
                    mean = sum(part) / len(part)
                    total += sum((v - mean) ** 2 for v in part)
                return total

            best = min(cost(lab) for lab in itertools.product((1, 2, 3), repeat=n))
            assert abs(cost(labels) - best) <= 1e-15, (values, labels)
            centres = [sum(v for v, x in zip(values, labels) if x == c) /
                       labels.count(c) for c in (1, 2, 3)]
            assert centres == sorted(centres), (values, labels)


def test_e_squeeze_budgets():
    F = Fraction
    s = [0.9, 0.1, 0.5, 0.95, 0.92]          # C1 = {1}, C2 = {2}, C3 = {0, 3, 4}
    labels, a, budgets = ref.squeeze_budgets(s, F("0.5"), F("0.3"), 16)
    assert labels == [3, 1, 2, 3, 3], labels
    assert a == F("0.8"), a                     # (5 * 0.5 - 3 * 0.3) / 2
    assert sum(budgets) == 5 * 8, budgets       # U = n floor(f0 N)
    # shares 4.8 12.8 12.8 4.8 4.8 (sum 40 = U): floors 4 12 12 4 4, 4 tokens left, every
    # remainder 0.8: the lower banks first
    assert budgets == [5, 13, 13, 5, 4], budgets
    labels, a, budgets = ref.squeeze_budgets(s, F("0.6"), F("0.4"), 16)
    # a = 0.9: shares 6.4 14.4 14.4 6.4 6.4 (sum 48) scaled to U = 45: 6 13.5 13.5 6 6
    # (exact arithmetic: 6.4 * 45 / 48 is exactly 6, remainder 0, so bank 1 gets the token)
    assert budgets == [6, 14, 13, 6, 6], budgets
    labels, a, budgets = ref.squeeze_budgets(s, F("0.6"), F("0.6"), 16)
    assert budgets == [9] * 5, budgets          # f3 = f0: the uniform run
    try:
        ref.squeeze_budgets(s, F("0.9"), F("0.1"), 16)
        raise AssertionError("a > 1 must be rejected")
    except ref.OracleError as e:
        assert "outside [0, 1]" in str(e), e


def test_e_squeeze_importance_same_in_every_prefill_mode():
    """s_l from an all-rows prefill (the last of P passes: exact) equals s_l token by token."""
    m = ref.load_model(checkpoint(layers=5, plan="0_3_3_3_4", seed=85), "f64")
    infos = []
    for mode in ("iterative", "token-by-token"):
        info = {}
        ref.decode(m, LONG, 10, ref.parse_policy("window"), ref.parse_budget("6"), mode=mode,
                   passes=10, info=info)
        infos.append(info["layer_importance"])
    assert max(abs(a - b) for a, b in zip(*infos)) < 1e-12, infos


# ---------------------------------------------------------------------------------------------
# Files, command line, bad input
# ---------------------------------------------------------------------------------------------

def test_half_precision_checkpoints_read_exactly():
    for dtype in ("f16", "bf16"):
        d = checkpoint(plan="0_0_2_2", seed=50, dtype=dtype)
        arrays = ref.read_safetensors(os.path.join(d, "model.safetensors"))
        d32 = os.path.join(TMP, f"as-f32-{dtype}")
        os.makedirs(d32)
        os.link(os.path.join(d, "config.json"), os.path.join(d32, "config.json"))
        mc.write_safetensors(os.path.join(d32, "model.safetensors"),
                             {n: a.astype(np.float32) for n, a in arrays.items()}, "f32")
        got = ref.forward(ref.load_model(d, "f64"), TOKENS)
        assert_close(got, ref.forward(ref.load_model(d32, "f64"), TOKENS), 0, dtype)
    # bfloat16 bits: exact values survive, a tie rounds to even (1 + 2^-8 -> 1)
    values = np.array([1.0, -2.5, 0.15625, 1 + 2.0 ** -8, 1 + 3 * 2.0 ** -8], dtype=np.float32)
    back = ref.bf16_bits_to_float32(mc.float32_to_bf16_bits(values))
    assert back.tolist() == [1.0, -2.5, 0.15625, 1.0, 1 + 2.0 ** -6], back


def run_cli(*args):
    """The real command line, in a fresh interpreter (slow: torch loads again)."""
    return subprocess.run([sys.executable, os.path.join(HERE, "torch_reference.py"), *args],
                          capture_output=True, text=True)


def run_main(*args):
    """The same entry point in this process: (exit status, stderr text)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = ref.main(list(args))
    return rc, err.getvalue()


def test_command_line():
    d = checkpoint(layers=5, plan="0_1_2_3_4", seed=60)
    out64, out32 = os.path.join(TMP, "l64.npy"), os.path.join(TMP, "l32.npy")
    tokens = ",".join(map(str, TOKENS))
    r = run_cli("--model", d, "--tokens", tokens, "--precision", "f64", "--out", out64,
                "--plan", "0_3_3_3_4", "--mode", "iterative", "--passes", "8")
    assert r.returncode == 0, r.stderr
    a = np.load(out64)
    assert a.dtype == np.float64 and a.shape == (len(TOKENS), 64), (a.dtype, a.shape)
    m = ref.load_model(d, "f64", "0_3_3_3_4")
    assert_close(a, ref.forward(m, TOKENS, "token-by-token"), 1e-12, "cli --plan override")
    rc, err = run_main("--model", d, "--tokens", tokens, "--precision", "f32", "--out", out32)
    assert rc == 0, err
    b = np.load(out32)
    assert b.dtype == np.float32 and b.shape == (len(TOKENS), 64)
    assert_close(b, ref.forward(ref.load_model(d, "f64"), TOKENS), 1e-5, "cli f32")


def test_bad_input_gives_error_and_no_file():
    d = checkpoint(layers=5, seed=62)
    bad_out = os.path.join(TMP, "never.npy")
    for args in (["--tokens", "1,64"], ["--tokens", "1,x"], ["--tokens", ""],
                 ["--tokens", "1", "--plan", "0_2_1_3_4"], ["--tokens", "1", "--plan", "0_1"],
                 ["--tokens", "1", "--plan", "0_3_3_3_4", "--passes", "0"]):
        rc, err = run_main("--model", d, "--out", bad_out, *args)
        assert rc != 0 and "error" in err and not os.path.exists(bad_out), (args, rc, err)
    broken = checkpoint(seed=61)
    path = os.path.join(broken, "model.safetensors")
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 4)
    rc, err = run_main("--model", broken, "--tokens", "1", "--out", bad_out)
    assert rc != 0 and "data_offsets" in err and not os.path.exists(bad_out), err
    rc, err = run_main("--model", d, "--tokens", "1", "--out", os.path.join(TMP, "no", "x.npy"))
    assert rc != 0 and "error" in err, err


def test_force_nodiag_from_config_or_flag():
    flag = ref.load_model(checkpoint(layers=5, plan="0_3_3_3_4", seed=80), "f64")
    conf = ref.load_model(checkpoint(layers=5, plan="0_3_3_3_4", seed=80, force_nodiag=True), "f64")
    assert_close(ref.forward(conf, TOKENS), ref.forward(flag, TOKENS, force_nodiag=True), 0, "")
    assert rel_err(ref.forward(flag, TOKENS), ref.forward(conf, TOKENS)) > 1e-6


def test_missing_kv_weights_under_override_rejected():
    d = checkpoint(plan="0_0_2_2", seed=70)
    try:
        ref.load_model(d, "f64", "0_1_2_3")
        raise AssertionError("layer 1 has no k_proj: must be rejected")
    except ref.OracleError as e:
        assert "model.layers.1.self_attn.k_proj.weight" in str(e), e
    # the other way round (more K/V weights than the plan needs) is fine
    m = ref.load_model(checkpoint(seed=70), "f64", "0_0_2_2")
    assert m.plan.kv == [0, 0, 2, 2]


def main():
    tests = [(n, f) for n, f in globals().items() if n.startswith("test_") and callable(f)]
    passed = failed = 0
    for name, fn in tests:
        try:
            fn()
            passed += 1
            print(f"PASS {name}")
        except Exception:  # noqa: BLE001 - report every failure, keep going
            failed += 1
            print(f"FAIL {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
