# kvlab.Session on the shipped models: logits bit for bit equal to the CLI's, generation, eval,
# squeeze, trace-prefill, telemetry as numpy views, and training a micro model.
import gc

import numpy as np
import pytest

import kvlab

PROMPT = "A fool and his money"


@pytest.fixture(scope="module")
def tiny():
    with kvlab.Session("tiny-standard", precision="f64") as s:
        yield s


def test_logits_equal_kvlab_forward_bit_for_bit(tiny, kvlab_cli, tmp_path):
    ids = tiny.encode(PROMPT)
    out = tmp_path / "x.npy"
    kvlab_cli("forward", "--model", "tiny-standard", "--precision", "f64", "--tokens",
              ",".join(map(str, ids)), "--out", out)
    cli = np.load(out)
    py = tiny.prefill(ids, all_logits=True)
    assert py.dtype == np.float64 and py.shape == cli.shape == (len(ids), tiny.vocab_size)
    assert np.array_equal(py, cli)  # bit for bit
    # a numpy int array and the text give the same prompt
    assert np.array_equal(tiny.prefill(np.array(ids, dtype=np.int32), all_logits=True), cli)
    assert np.array_equal(tiny.prefill(PROMPT, all_logits=True), cli)
    last = tiny.prefill(PROMPT)  # the last row alone (one GEMV): equal to rounding
    assert last.shape == (tiny.vocab_size,) and np.allclose(last, cli[-1], rtol=0, atol=1e-9)


def test_generate_matches_the_cli(tiny, kvlab_cli):
    r = tiny.generate(PROMPT, max_new=12)
    cli = kvlab_cli("generate", "--model", "tiny-standard", "--precision", "f64", "--prompt",
                    PROMPT, "--max-new", "12").stdout
    assert len(r.tokens) <= 12 and r.prompt_tokens == len(tiny.encode(PROMPT))
    assert r.text and r.text in cli
    assert "GenerateResult(tokens=" in repr(r)


def test_step_and_state(tiny):
    tiny.prefill(PROMPT)
    n = tiny.position
    logits = tiny.step(int(np.argmax(tiny.prefill(PROMPT))))
    assert logits.shape == (tiny.vocab_size,) and tiny.position == n + 1
    assert tiny.kv_bytes_held > 0 and tiny.num_banks == tiny.plan.num_kv_layers
    tiny.reset()
    assert tiny.position == 0


def test_bank_kv_and_attention_views_outlive_the_session():
    s = kvlab.Session("tiny-cla2-mqa")
    with s.record("attention", "layer_importance") as rec:
        s.prefill(PROMPT)
    T = s.position
    kv = s.bank_kv(s.plan.kv_layers[-1])
    c = s.config
    assert kv.k.shape == (T, c.num_key_value_heads, c.head_dim) and kv.v.shape == kv.k.shape
    assert (kv.positions == np.arange(T)).all()
    att = rec.attention
    assert len(att) == c.num_hidden_layers and not rec.active
    probs = att[0].probs
    assert probs.shape == (c.num_attention_heads, T, T) and probs.dtype == np.float32
    assert np.allclose(probs.sum(-1), 1, atol=1e-5) and not probs.flags.writeable
    assert np.all(np.triu(probs[0], 1) == 0)  # causal
    imp = rec.importance[0].cos_sim
    assert imp.shape == (c.num_hidden_layers,)
    k_copy, p_copy = kv.k.copy(), probs.copy()
    k_view = kv.k
    del s, kv, att, rec
    gc.collect()
    assert np.array_equal(k_view, k_copy) and np.array_equal(probs, p_copy)  # owners alive


def test_eval_and_squeeze():
    with kvlab.Session("tiny-standard", policy="h2o", squeeze="0.4,0.1") as s:
        r = s.eval("passkey", n=2, length=64, show=1)
        assert r.scored > 0 and 0 <= r.accuracy <= 1 and len(r.shown) == 1
        assert r.kv_bytes_held < r.kv_bytes_full
        q = s.squeeze("The best way to predict the future is to invent it, said the man.")
        assert q.evicting_banks == s.plan.num_kv_layers
        assert q.layer_importance.shape == (s.config.num_hidden_layers,)
        assert set(q.cluster.tolist()) <= {1, 2, 3} and q.budget.sum() == q.total_budget
        s.configure(policy="window:16", squeeze=None)
        assert s.run_options["policy"] == "window:16" and s.run_options["squeeze"] is None
        p = s.ppl("The best way to predict the future is to invent it.")
        assert p.predicted > 0 and p.perplexity > 1


def test_trace_prefill_converges():
    with kvlab.Session("tiny-lckv2") as s:
        rep = s.trace_prefill("The best way to predict the future", exact=True)
        assert rep.blocks == s.plan.cyclic_blocks and rep.passes
        cols = kvlab.columns(rep.passes)
        assert cols["pass_"][0] == 1 and cols["err_k"][-1] <= cols["err_k"][0]
        assert 0 <= rep.logits_rel_error < 1e-3
        assert s.position == 0  # the session's sequence is untouched


def test_grad_shapes():
    with kvlab.Session.random("stories15m", plan="cla:2", precision="f64", context=16) as s:
        g = s.grad([1, 5, 9, 200, 7], train_passes="7,2")
        assert g.loss.loss > 0 and g.predictions == 4
        assert g.grads["model.embed_tokens.weight"].shape == (s.vocab_size, s.config.hidden_size)


def test_train_micro(tmp_path):
    seen = []
    out = tmp_path / "run"
    r = kvlab.train(str(out), preset="micro", plan="cla:2", steps=3, val_every=3,
                    on_progress=seen.append)
    assert r.steps_done == 3 and r.info.plan == "cla:2" and seen
    assert [p.kind for p in r.history].count("step") == 3
    assert (out / "best" / "config.json").exists()
    with kvlab.Session(str(out / "best")) as s:
        assert s.plan.text == kvlab.Plan("cla:2", s.config.num_hidden_layers).text
    with pytest.raises(ZeroDivisionError):
        kvlab.train(str(tmp_path / "r2"), preset="micro", plan="standard", steps=3,
                    on_progress=lambda p: 1 / 0)


def test_dump_gives_every_intermediate_as_numpy_and_equals_the_cli(tiny, kvlab_cli, tmp_path):
    tensors, meta = tiny.dump(PROMPT, decode=2)
    ids = tiny.encode(PROMPT)
    T, V = len(ids), tiny.vocab_size
    assert np.array_equal(tensors["prefill.logits"], tiny.prefill(ids, all_logits=True))
    probs = tensors["prefill.layer1.attn.probs"]  # (H, T, N): rows sum to 1, causal
    assert probs.dtype == np.float64 and probs.shape[1] == T
    assert np.allclose(probs.sum(axis=-1), 1.0)
    assert probs[0, 0, 1:].max() == 0.0
    assert tensors["decode2.logits"].shape[-1] == V
    assert meta["precision"] == "f64" and "map" in meta
    # the same names and values as `kvlab dump` writes
    from safetensors.numpy import load_file
    out = tmp_path / "d.safetensors"
    kvlab_cli("dump", "--model", "tiny-standard", "--precision", "f64", "--prompt", PROMPT,
              "--decode", "2", "--out", out)
    cli = load_file(str(out))
    assert set(cli) == set(tensors)
    for name, a in cli.items():
        assert np.array_equal(a, tensors[name]), name
    only, _ = tiny.dump(PROMPT, what="probs", layers="1")
    assert "prefill.layer1.attn.probs" in only
    assert all(".layer1.attn.probs" in k or "token" in k for k in only), sorted(only)
    with pytest.raises(kvlab.Error, match="--what"):
        tiny.dump(PROMPT, what="nonsense")


def test_record_kept_and_tensors(kvlab_cli, tmp_path):
    # `kept`: the positions every bank and KV head kept, after the prefill and each decode step,
    # as `kvlab generate --telemetry F --kept` writes them.
    with kvlab.Session("tiny-standard", policy="window", budget=6) as s:
        with s.record("kept") as rec:
            r = s.generate(PROMPT, max_new=3)
        kept = rec.kept
        banks, heads = s.num_banks, s.config.num_key_value_heads
        steps = len(r.tokens) + 1  # the prefill, then one per decoded token but the last
        assert len(kept) in (steps * banks * heads, (steps - 1) * banks * heads)
        e = kept[-1]
        assert isinstance(e, kvlab.KeptEvent) and e.policy.startswith("window") and e.budget == 6
        assert e.positions.dtype == np.int32 and len(e.positions) == 6
        assert not e.positions.flags.writeable
        assert rec.kv_steps == [] and rec.tensors == []  # only what was asked for
        # the same decisions the CLI writes
        out = tmp_path / "t.jsonl"
        kvlab_cli("generate", "--model", "tiny-standard", "--policy", "window", "--budget", "6",
                  "--prompt", PROMPT, "--max-new", "3", "--telemetry", out, "--kept")
        import json
        cli = [j for j in map(json.loads, out.read_text().splitlines()) if j["event"] == "kept"]
        assert len(cli) == len(kept)
        for j, k in zip(cli, kept):
            assert (j["step"], j["bank"], j["kv_head"], j["budget"]) == \
                (k.step, k.bank, k.kv_head, k.budget)
            assert j["positions"] == k.positions.tolist()

        # "all" is every kind but tensors, as C++'s kAllEvents: kept events arrive, tensors not.
        with s.record("all") as rec:
            s.prefill(PROMPT)
        assert len(rec.kept) == banks * heads and rec.kv_steps and rec.tensors == []

        # `tensors`, asked for by name: every intermediate, shaped, as `kvlab dump` names them.
        s.configure(policy="full", budget=None)
        with s.record("tensors") as rec:
            s.prefill(PROMPT)
        names = {t.name: t for t in rec.tensors}
        k = names["prefill.layer0.attn.k"]
        assert isinstance(k, kvlab.TensorEvent) and not k.integer
        T = s.position
        assert tuple(k.shape) == (T, heads, s.config.head_dim) == k.array.shape
        assert np.array_equal(k.array, s.bank_kv(0).k)  # what bank 0 holds, bit for bit
        read = names["prefill.layer0.attn.read_positions"]  # (H_kv, N) int64: cells' positions
        assert read.integer and read.array.dtype == np.int64 and read.array.shape == (heads, T)
        assert (read.array == np.arange(T)).all()
        with pytest.raises(kvlab.Error, match="kinds = nope is invalid: must be .*kept, tensors"):
            s.record("nope")


def test_kv_dtype_rounds_the_stored_values():
    with kvlab.Session("tiny-standard", precision="f64") as a, \
            kvlab.Session("tiny-standard", precision="f64", dtype="f16") as b:
        assert a.kv_dtype == "f64" and b.kv_dtype == "f16" and b.run_options["dtype"] == "f16"
        la, lb = a.prefill(PROMPT), b.prefill(PROMPT)
        assert 0 < np.abs(la - lb).max() < 1e-2 * np.abs(la).max()
        assert a.kv_bytes_held == 4 * b.kv_bytes_held
        k = b.bank_kv(0).k
        assert np.array_equal(k, k.astype(np.float16).astype(np.float64))  # f16 values
        with pytest.raises(kvlab.Error, match="--dtype = fp8 is invalid"):
            b.configure(dtype="fp8")
