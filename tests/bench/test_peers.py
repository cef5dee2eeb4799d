# bench/peers.py (docs/performance.md, "Beside the peers"): the parts that need no peer built --
# its text comparison, its llama-bench arithmetic (against a stand-in llama-bench that prints
# known times), its table block in the docs and its usage errors.
import importlib.util
import json
import os
import pathlib
import stat
import subprocess
import sys
import types

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("KVLAB_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))
SCRIPT = SOURCE_DIR / "bench" / "peers.py"


@pytest.fixture(scope="module")
def peers():
    spec = importlib.util.spec_from_file_location("peers", SCRIPT)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_text_of_compares_the_three_programs_outputs(peers):
    # Each program prints a control byte its own way: kvlab escapes it, llama-cli writes it raw,
    # run skips it; kvlab's summary and run's speed line are not text; llama-cli's BOS piece is not.
    kvlab = "once upon a time robot Matrix\\x18ǧ end\n\n[kvlab] plan standard | prompt 10 tokens\n"
    run = "once upon a time robot Matrixǧ end\nachieved tok/s: 3.5\n"
    cli = "<s> once upon a time robot Matrix\x18ǧ end\n\n"
    assert peers.text_of(kvlab) == peers.text_of(run) == peers.text_of(cli)
    assert peers.text_of(kvlab) == "once upon a time robot Matrixǧ end"
    assert peers.text_of(run) != peers.text_of(run.replace("end", "End"))
    # a newline the model generated counts as whitespace on every side
    assert peers.text_of("a\nb\n[kvlab] x") == peers.text_of("a b")


FAKE_BENCH = r'''#!PYTHON
# A stand-in llama-bench: pp costs 1 ms a token, tg 20 ms a token; prints its tests as JSON.
import json, sys
a = sys.argv[1:]
opt = lambda k: [a[i + 1] for i in range(len(a)) if a[i] == k]
assert opt("-o") == ["json"] and opt("-m") and opt("-t") and opt("-ctk") == opt("-ctv")
tests = []
p, n, reps = int(opt("-p")[0]), int(opt("-n")[0]), int(opt("-r")[0])
pairs = ([(p, 0)] if p else []) + ([(0, n)] if n else [])
pairs += [tuple(int(x) for x in pg.split(",")) for pg in opt("-pg")]
for pp, tg in pairs:
    ns = pp * 1000000 + tg * 20000000
    tests.append(dict(build_commit="abc1234", n_prompt=pp, n_gen=tg,
                      samples_ns=[ns + 5000000 * i for i in range(reps)]))
print(json.dumps(tests))
'''


def test_llama_bench_rates(peers, tmp_path):
    fake = tmp_path / "llama-bench"
    fake.write_text(FAKE_BENCH.replace("PYTHON", sys.executable))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    p = peers.Programs.__new__(peers.Programs)
    p.a = types.SimpleNamespace()
    p.llama_bench, p.gguf, p.cache, p.llamacpp_commit = str(fake), "m.gguf", "f16", None
    # prefill: the best of 3 runs, 1 ms a token
    assert p.llamacpp_prefill(128, 2) == pytest.approx(1000.0)
    # decode at depth 0: tg alone, 20 ms a token
    assert p.llamacpp_decode(0, 64, 1) == pytest.approx(50.0)
    # decode at depth 512: pp512+tg64 minus pp512 leaves the 64 tokens' 20 ms each
    assert p.llamacpp_decode(512, 64, 2) == pytest.approx(50.0)
    assert p.llamacpp_commit == "abc1234"


def test_with_table_replaces_the_block_between_the_markers(peers):
    doc = ("# Performance\n\nbefore\n<!-- peers:begin (bench/peers.py --write-docs) -->\nold stamp\n"
           "\n| old |\n<!-- peers:end -->\nafter\n")
    out = peers.with_table(doc, "new stamp", "| new |")
    assert "old" not in out and "new stamp\n\n| new |\n<!-- peers:end -->\nafter\n" in out
    assert out.startswith("# Performance\n\nbefore\n<!-- peers:begin")
    assert peers.with_table(out, "new stamp", "| new |") == out
    fresh = peers.with_table("# Performance\n", "s", "| t |")
    assert fresh.count("<!-- peers:begin") == 1 and "## Beside the peers" in fresh


@pytest.mark.parametrize("args, field", [
    (["--runs", "0"], "--runs = 0"),
    (["--threads", "1,x"], "--threads = 1,x"),
    (["--tokens", "0"], "--tokens = 0"),
    (["--prefill", "1"], "--prefill = 1"),
    (["--gguf", "m.gguf"], "needs --llama-bench"),
])
def test_usage_errors_exit_2_naming_the_field(args, field, tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--llama2c", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert field in r.stderr


def test_missing_peer_exits_2_naming_it(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--llama2c", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"--llama2c = {tmp_path / 'run'} is invalid: not found" in r.stderr
