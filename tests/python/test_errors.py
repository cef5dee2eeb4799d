# Bad input from Python: an exception naming the field and the value, never a crash.
import numpy as np
import pytest

import kvlab


@pytest.fixture(scope="module")
def s():
    with kvlab.Session("tiny-standard") as s:
        yield s


def test_wrong_plan_string(kvlab_cli):
    with pytest.raises(kvlab.Error, match="plan") as e:
        kvlab.Session("tiny-standard", plan="cla:zero")
    r = kvlab_cli("generate", "--model", "tiny-standard", "--plan", "cla:zero", "--prompt", "x",
                  check=False)
    assert r.returncode == 2 and r.stderr.strip() == "kvlab: error: " + str(e.value)


def test_token_arrays(s):
    with pytest.raises(kvlab.Error, match="float64"):
        s.prefill(np.array([1.0, 2.0]))
    with pytest.raises(kvlab.Error, match="2 dimensions"):
        s.prefill(np.ones((2, 2), dtype=np.int64))
    with pytest.raises(kvlab.Error, match=r"token = 99999 \(at index 1\)"):
        s.prefill([1, 99999])
    with pytest.raises(kvlab.Error, match="-5"):
        s.prefill(np.array([1, -5], dtype=np.int64))
    with pytest.raises(kvlab.Error, match=r"'a' \(at index 1\)"):
        s.prefill([1, "a"])
    with pytest.raises(kvlab.Error, match="4294967296"):
        s.prefill([1, 2**32])
    with pytest.raises(kvlab.Error, match="token"):
        s.step(-1)
    assert s.prefill([1, 2]).shape == (s.vocab_size,)  # still usable


def test_bad_options(s):
    with pytest.raises(kvlab.Error, match="polcy"):
        kvlab.Session("tiny-standard", polcy="window")
    with pytest.raises(kvlab.Error, match="policy"):
        s.configure(policy="lru")
    assert s.run_options["policy"] == "full"  # unchanged after the error
    with pytest.raises(kvlab.Error, match="precision"):
        kvlab.Session("tiny-standard", precision="f16")
    with pytest.raises(kvlab.Error, match="--backend = tpu is invalid: must be cpu or cuda"):
        kvlab.Session("tiny-standard", backend="tpu")
    with pytest.raises(kvlab.Error,
                       match="--backend = cuda is invalid: .*(float32|without the CUDA)"):
        kvlab.Session("tiny-standard", backend="cuda", precision="f64")
    assert kvlab.Session("tiny-standard", backend="cpu").run_options["backend"] == "cpu"
    with pytest.raises(kvlab.Error, match="no-such-model"):
        kvlab.Session("no-such-model")
    with pytest.raises(kvlab.Error, match="kinds = attn"):
        s.record("attn")
    with pytest.raises(kvlab.Error, match="kv_layer = 1"):
        kvlab.Session("tiny-cla2-mqa").bank_kv(1)
    with pytest.raises(kvlab.Error, match="max-new"):
        s.generate("x", max_new=-1)
    with pytest.raises(kvlab.Error, match="task"):
        s.eval("nope")
    with pytest.raises(kvlab.Error, match="squeeze"):
        s.squeeze("Once upon a time")


def test_closed_session():
    s = kvlab.Session("tiny-standard")
    s.close()
    assert s.closed and "closed" in repr(s)
    for call in (lambda: s.prefill("x"), lambda: s.position, lambda: s.encode("x"),
                 lambda: s.configure(plan="cla:2"), lambda: s.record()):
        with pytest.raises(kvlab.Error, match=r"session = \(closed\)"):
            call()
    with kvlab.Session("tiny-standard") as t:
        rec = t.record()
    with pytest.raises(kvlab.Error, match="session"):
        t.step(1)
    assert not rec.active and rec.kv_steps == []
