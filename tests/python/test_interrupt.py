# Ctrl-C: a long call on the worker thread stops within a second of SIGINT, raises
# KeyboardInterrupt, and leaves the session usable.
import signal
import threading
import time

import pytest

import kvlab


def sigint_after(seconds):
    t = threading.Timer(seconds, signal.raise_signal, args=(signal.SIGINT,))
    t.start()
    return t


@pytest.mark.parametrize("call", ["eval", "generate", "ppl"])
def test_ctrl_c_stops_long_calls(call):
    s = kvlab.Session("tiny-standard")
    text = "The quick brown fox jumps over the lazy dog. " * 400
    work = {
        "eval": lambda: s.eval("mqar", n=10000, length=64),
        # many short generations (the context is 128 tokens) until interrupted
        "generate": lambda: [s.generate("Once", max_new=100, temperature=1.0, seed=i)
                             for i in range(100000)],
        "ppl": lambda: [s.ppl(text, window=128) for _ in range(1000)],
    }[call]
    sigint_after(0.5)
    start = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        work()
    assert time.monotonic() - start < 1.5
    assert s.prefill([1, 2, 3]).shape == (s.vocab_size,) and s.position == 3


def test_ctrl_c_stops_training(tmp_path):
    sent = []

    def on_progress(p):  # SIGINT once the steps run (the corpus is built before them)
        if p.step == 2 and not sent:
            sent.append(time.monotonic())
            signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        kvlab.train(str(tmp_path / "run"), preset="micro", plan="standard", steps=100000,
                    on_progress=on_progress)
    assert sent and time.monotonic() - sent[0] < 1.0
