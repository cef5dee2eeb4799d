# bench/llmc.py (docs/performance.md, "Training beside llm.c"): the parts that need no llm.c
# built -- its writers of llm.c's checkpoint and token formats (read back), its parameter and FLOP
# arithmetic (against the counts the two trainers print), how it reads llm.c's B and T and stops
# it (a stand-in train_gpt2), its SGEMM timing, its docs block and its usage errors.
import array
import ctypes.util
import importlib.util
import os
import pathlib
import stat
import struct
import subprocess
import sys
import time
import types

import pytest

SOURCE_DIR = pathlib.Path(os.environ.get("KVLAB_SOURCE_DIR",
                                         pathlib.Path(__file__).resolve().parents[2]))
SCRIPT = SOURCE_DIR / "bench" / "llmc.py"


@pytest.fixture(scope="module")
def llmc():
    spec = importlib.util.spec_from_file_location("llmc", SCRIPT)
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def floats(path, offset, n):
    with open(path, "rb") as f:
        f.seek(1024 + 4 * offset)
        a = array.array("f")
        a.frombytes(f.read(4 * n))
    return a


def test_checkpoint_round_trip_in_llmcs_layout(llmc, tmp_path):
    path = str(tmp_path / "m.bin")
    cfg = dict(maxT=8, V=10, Vp=16, L=2, NH=2, C=4)
    n = llmc.write_llmc_checkpoint(path, **cfg, seed=3)
    back = llmc.read_llmc_checkpoint(path)
    assert back == {**cfg, "params": n}
    # wte 16*4, wpe 8*4, ln1w 2*4, ln1b, qkvw 2*12*4, qkvb 2*12, attprojw 2*16, attprojb, ln2w,
    # ln2b, fcw 2*16*4, fcb 2*16, fcprojw 2*4*16, fcprojb, lnfw, lnfb
    assert n == 64 + 32 + 8 + 8 + 96 + 24 + 32 + 8 + 8 + 8 + 128 + 32 + 128 + 8 + 4 + 4
    assert os.path.getsize(path) == 1024 + 4 * n
    with open(path, "rb") as f:
        assert struct.unpack("<8i", f.read(32)) == (20240326, 3, 8, 10, 2, 2, 4, 16)
    offsets, at = {}, 0
    for name, size in llmc.llmc_param_sizes(**cfg):
        offsets[name] = (at, size)
        at += size
    assert list(floats(path, *offsets["ln1w"])) == [1.0] * 8
    assert list(floats(path, *offsets["lnfw"])) == [1.0] * 4
    assert set(floats(path, *offsets["qkvb"])) == {0.0} and set(floats(path, *offsets["lnfb"])) == {0.0}
    wte = floats(path, *offsets["wte"])
    assert len(set(wte)) == 64 and max(abs(x) for x in wte) < 0.12
    # the residual projections are scaled by 1 / sqrt(2L) = 1/2
    fcproj = floats(path, *offsets["fcprojw"])
    assert max(abs(x) for x in fcproj) < 0.06
    # seeded: the same bytes again
    again = str(tmp_path / "again.bin")
    llmc.write_llmc_checkpoint(again, **cfg, seed=3)
    assert pathlib.Path(again).read_bytes() == pathlib.Path(path).read_bytes()


def test_checkpoint_reader_refuses_what_llmc_refuses(llmc, tmp_path):
    path = tmp_path / "m.bin"
    llmc.write_llmc_checkpoint(str(path), maxT=4, V=8, Vp=8, L=1, NH=1, C=2)
    data = path.read_bytes()
    path.write_bytes(data[:-4])
    with pytest.raises(ValueError, match="bytes, not the header"):
        llmc.read_llmc_checkpoint(str(path))
    path.write_bytes(struct.pack("<i", 20240326) + struct.pack("<i", 2) + data[8:])
    with pytest.raises(ValueError, match="version 2"):
        llmc.read_llmc_checkpoint(str(path))
    with pytest.raises(ValueError, match="NH dividing C"):
        llmc.write_llmc_checkpoint(str(tmp_path / "x.bin"), maxT=4, V=8, Vp=8, L=1, NH=3, C=4)
    assert not (tmp_path / "x.bin").exists() and not (tmp_path / "x.bin.tmp").exists()


def test_tokens_round_trip(llmc, tmp_path):
    path = str(tmp_path / "t.bin")
    toks = [0, 1, 1023, 65535, 7]
    llmc.write_llmc_tokens(path, toks)
    assert os.path.getsize(path) == 1024 + 2 * len(toks)
    with open(path, "rb") as f:
        assert struct.unpack("<3i", f.read(12)) == (20240520, 1, 5)
    assert llmc.read_llmc_tokens(path) == toks
    with pytest.raises(ValueError, match="65535"):
        llmc.write_llmc_tokens(path, [65536])
    with open(path, "ab") as f:
        f.write(b"\0\0")
    with pytest.raises(ValueError, match="header says 5 tokens, the file holds 6"):
        llmc.read_llmc_tokens(path)


def test_parameter_counts_match_what_the_trainers_print(llmc):
    # `kvlab train --preset tiny --plan standard` prints 1,410,688 parameters
    total, mm = llmc.kvlab_params(L=6, C=128, H=4, Hkv=4, D=32, F=384, V=1024)
    assert total == 1_410_688 and mm == 6 * (4 * 128 * 128 + 3 * 128 * 384) + 1024 * 128
    # train_gpt2 prints num_parameters: 1337344 for the matched checkpoint, and 124475904 for
    # GPT-2 124M (Vp 50304)
    assert llmc.llmc_params(maxT=128, L=6, C=128, Vp=1024)[0] == 1_337_344
    assert llmc.llmc_params(maxT=1024, L=12, C=768, Vp=50304)[0] == 124_475_904
    # GQA shrinks K and V only
    assert llmc.kvlab_params(6, 128, 4, 1, 32, 384, 1024)[1] == mm - 6 * 2 * 128 * 3 * 32


def test_flops_per_token(llmc):
    assert llmc.train_flops_per_token(1_409_024, L=6, H=4, D=32, T=128) == 9_048_576
    # the attention term against a count of the causal (query, key) pairs of one sequence
    L, H, D, T = 3, 2, 8, 10
    pairs = sum(t + 1 for t in range(T))
    per_token = 3 * L * (2 * H * D + 2 * H * D) * pairs / T
    assert llmc.train_flops_per_token(0, L, H, D, T) == pytest.approx(per_token)


def test_llmcs_batch_read_back_from_its_printout(llmc):
    cfg = dict(maxT=128, L=6, NH=4, C=128, Vp=1024)
    # train_gpt2 (f1e2ace, B = 16 and T = 128 built in) printed num_activations: 45668352
    assert llmc.llmc_num_activations(16, 128, 6, 4, 128, 1024) == 45_668_352
    assert llmc.llmc_batch_of(45_668_352, 1000, 16 * 128 * 1000 + 1, cfg) == (16, 128)
    stock = llmc.llmc_num_activations(4, 64, 6, 4, 128, 1024)
    assert llmc.llmc_batch_of(stock, (16 * 128 * 1000 + 1) // 256, 16 * 128 * 1000 + 1,
                              cfg) == (4, 64)
    assert llmc.llmc_batch_of(45_668_352 + 1, 1000, 16 * 128 * 1000 + 1, cfg) is None


FAKE_TRAIN = r'''#!PYTHON
# A stand-in train_gpt2: prints what the real one prints, then 'samples' for a minute.
import os, time
print("[GPT-2]\nnum_parameters: NPARAMS\ntrain dataset num_batches: 1000\n"
      "num_activations: 45668352\nval loss 6.9")
for step in range(6):
    print(f"step {step}: train loss 6.9 (took {100 * (step + 1)}.5 ms)")
print("generating:", os.environ["OMP_NUM_THREADS"])
time.sleep(60)  # no flush: into a pipe nothing would have come out yet
'''


def test_llmc_round_reads_its_steps_and_stops_it(llmc, tmp_path):
    p = llmc.Trainers.__new__(llmc.Trainers)
    cfg = dict(maxT=128, V=1024, L=6, NH=4, C=128, Vp=1024)
    p.llmc_cfg = {**cfg, "params": 1_337_344}
    p.shape = dict(L=6, C=128, H=4, D=32, F=384, T=128, B=16)
    p.train_tokens = 16 * 128 * 1000 + 1
    p.workdir = str(tmp_path)
    p.a = types.SimpleNamespace(timeout=30)
    fake = tmp_path / "train_gpt2"
    fake.write_text(FAKE_TRAIN.replace("PYTHON", sys.executable).replace("NPARAMS", "1337344"))
    fake.chmod(fake.stat().st_mode | stat.S_IXUSR)
    p.bin = str(fake)
    t0 = time.monotonic()
    # block-buffered output would print nothing before the sleep: the pseudo-terminal makes the
    # program write line by line, and the round stops it after the steps asked for
    assert p.llmc_round(4, 2) == [0.1005, 0.2005, 0.3005, 0.4005]
    assert time.monotonic() - t0 < 20
    assert llmc.rate([9.0, 1.0, 2.0, 4.0], 1, 2048) == pytest.approx(1024.0)
    p.shape = {**p.shape, "B": 8, "T": 256}
    with pytest.raises(SystemExit) as e:
        p.llmc_round(2, 1)
    assert e.value.code == 2


def test_sgemm_gflops_times_openblas(llmc):
    lib = ctypes.util.find_library("openblas")
    if not lib:
        pytest.skip("no libopenblas")
    assert llmc.sgemm_gflops(lib, 1, n=128, repeat=2) > 0.1


def test_docs_block_is_its_own(llmc):
    peers_block = "<!-- peers:begin (x) -->\ns\n\n| p |\n<!-- peers:end -->\n"
    doc = "# P\n" + peers_block
    out = llmc.peers.with_table(doc, "stamp", "| t |", marker="llmc", script="bench/llmc.py",
                                title="Training beside llm.c (issue 18)")
    assert peers_block in out and "## Training beside llm.c (issue 18)" in out
    again = llmc.peers.with_table(out, "new", "| u |", marker="llmc", script="bench/llmc.py")
    assert peers_block in again and "| t |" not in again and "new\n\n| u |\n<!-- llmc:end -->" in again


@pytest.mark.parametrize("args, field", [
    (["--runs", "0"], "--runs = 0"),
    (["--threads", "1,x"], "--threads = 1,x"),
    (["--steps", "21"], "--steps = 21"),
    (["--steps", "5", "--skip", "5"], "--skip = 5"),
    (["--timeout", "0"], "--timeout = 0"),
])
def test_usage_errors_exit_2_naming_the_field(args, field, tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--llmc", str(tmp_path), *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert f"bench/llmc.py: error: {field} is invalid" in r.stderr


def test_missing_peer_exits_2_naming_it(tmp_path):
    r = subprocess.run([sys.executable, str(SCRIPT), "--llmc", str(tmp_path / "none")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--llmc = " in r.stderr
    r = subprocess.run([sys.executable, str(SCRIPT), "--llmc", str(tmp_path)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2
    assert f"--train-gpt2 = {tmp_path / 'train_gpt2'} is invalid: not found" in r.stderr
