"""kvlab from Python: the engine of the `kvlab` command, as a module.

The same Session the CLI uses (plans, models, prefill / step / generate / ppl / eval / squeeze /
trace-prefill, telemetry), the simulator and training, bound with pybind11 (python/*.cpp). The
guide with examples is docs/python.md; a quick start:

    import kvlab
    kvlab.models()                                   # the shipped trained models
    with kvlab.Session("tiny-standard") as s:
        logits = s.prefill("A fool and his money")   # numpy (V,), float64
        print(s.generate("A fool and his money", max_new=20).text)
    plan = kvlab.Plan("lckv:2", 8)
    plan.map, plan.kv_layers, plan.cyclic_blocks, plan.bytes_per_token(4, 64)

Errors from the engine raise kvlab.Error (a ValueError) with the CLI's message, which names the
field and the value. Long calls release the GIL and stop on Ctrl-C (KeyboardInterrupt).
"""

import os as _os

_here = _os.path.dirname(_os.path.abspath(__file__))
# A pip-installed kvlab carries the shipped models in kvlab/models; the engine finds models
# through $KVLAB_MODELS (session/builtin_models.hpp), so point it there unless the user did.
if "KVLAB_MODELS" not in _os.environ and _os.path.isdir(_os.path.join(_here, "models")):
    _os.environ["KVLAB_MODELS"] = _os.path.join(_here, "models")

from ._kvlab import *  # noqa: E402,F401,F403
from ._kvlab import (  # noqa: E402
    Error, Plan, Session, ModelConfig, model_config, __doc__ as _ext_doc,
)
from . import _kvlab  # noqa: E402

__version__ = "0.1.0"


def _is_array(v):
    return type(v).__module__ == "numpy" and hasattr(v, "shape")


def _fields(obj):
    """The public read-only fields of a bound result or event, in declaration order."""
    names = []
    for cls in type(obj).__mro__:
        for k, v in vars(cls).items():
            if isinstance(v, property) and not k.startswith("_") and k not in names:
                names.append(k)
    return names


def _short(v):
    if _is_array(v):
        return f"array(shape={tuple(v.shape)}, dtype={v.dtype})"
    if isinstance(v, list) and len(v) > 8:
        return "[" + ", ".join(_short(x) for x in v[:8]) + f", ... ({len(v)} items)]"
    if isinstance(v, float):
        return f"{v:.6g}"
    return repr(v)


def _repr(self):
    parts = []
    for k in _fields(self):
        try:
            parts.append(f"{k}={_short(getattr(self, k))}")
        except Exception as e:  # noqa: BLE001 (a field that cannot be read is shown as such)
            parts.append(f"{k}=<{type(e).__name__}>")
    return f"{type(self).__name__}({', '.join(parts)})"


def to_dict(obj):
    """A bound result or event as a plain dict (nested results too; arrays stay numpy)."""
    out = {}
    for k in _fields(obj):
        v = getattr(obj, k)
        if hasattr(type(v), "__module__") and type(v).__module__.startswith("kvlab"):
            v = to_dict(v)
        elif isinstance(v, list):
            v = [to_dict(x) if type(x).__module__.startswith("kvlab") else x for x in v]
        out[k] = v
    return out


# Readable, dataclass-like __repr__ for every result and event class of the extension.
for _name in dir(_kvlab):
    _cls = getattr(_kvlab, _name)
    if isinstance(_cls, type) and _cls.__module__.startswith("kvlab") and _name not in (
        "Plan", "Session", "Error",
    ) and not issubclass(_cls, BaseException):
        _cls.__repr__ = _repr
        _cls.to_dict = to_dict


def columns(items):
    """A list of events or results (e.g. TraceReport.passes, Recorder.kv_steps,
    TrainSummary.history) as {field: numpy array}, one entry per item: ready to plot."""
    import numpy as np

    items = list(items)
    if not items:
        return {}
    out = {}
    for k in _fields(items[0]):
        vals = [getattr(x, k) for x in items]
        if all(isinstance(v, (bool, int, float, str)) for v in vals):
            out[k] = np.array(vals)
    return out


def plan_report(spec, model=None, config=None, layers=None, kv_heads=None, head_dim=None,
                dtype="f16", prompt=512, m=7, b=2):
    """Everything `kvlab plan SPEC --json` prints, as a dict with the same keys: the map, KV
    layers, readers, upward edges, cyclic blocks, sliding layers, bytes per token beside the
    standard plan, LCKV's pass schedule for `prompt` tokens, and the diagram.

    The shape comes from exactly one of model (a preset, built-in model or checkpoint),
    config (a config.json) or layers (a synthetic shape: kv_heads default 1, head_dim 128)."""
    sources = sum(x is not None for x in (model, config, layers))
    if sources != 1:
        raise Error("model = " + ("(none)" if sources == 0 else "(several)") +
                    " is invalid: give exactly one of model, config, layers")
    if layers is not None:
        if head_dim is not None and head_dim < 1:
            raise Error(f"head_dim = {head_dim} is invalid: must be >= 1")
        L, hkv, D, window = layers, kv_heads or 1, head_dim or 128, 4096
        if not 1 <= L <= 1024:
            raise Error(f"layers = {L} is invalid: must be in [1, 1024]")
    else:
        if head_dim is not None:
            raise Error(f"head_dim = {head_dim} is invalid: it is fixed by the model; "
                        "use it only with layers")
        c = model_config(model if model is not None else config)
        L, hkv, D, window = c.num_hidden_layers, c.num_key_value_heads, c.head_dim, c.sliding_window
        if kv_heads is not None:
            if kv_heads < 1 or c.num_attention_heads % kv_heads:
                raise Error(f"kv_heads = {kv_heads} is invalid: must divide the model's "
                            f"num_attention_heads = {c.num_attention_heads}")
            hkv = kv_heads
    plan = Plan(spec, L)
    std = Plan("standard", L)
    bpt = plan.bytes_per_token(hkv, D, dtype)
    bpt_std = std.bytes_per_token(hkv, D, dtype)
    d = plan.diagram()
    return {
        "spec": spec,
        "map": plan.text,
        "layers": plan.layers,
        "kv_heads": hkv,
        "head_dim": D,
        "dtype": dtype,
        "kv_layers": plan.kv_layers,
        "readers": {str(k): v for k, v in plan.readers_map.items()},
        "upward_edges": [list(e) for e in plan.upward_edges],
        "cyclic_blocks": [list(x) for x in plan.cyclic_blocks],
        "sliding_layers": plan.sliding_layers,
        "sliding_window": window,
        "bytes_per_token": bpt,
        "bytes_per_token_standard": bpt_std,
        "ratio_to_standard": bpt / bpt_std,
        "pass_schedule": plan.pass_schedule(prompt, m, b),
        "diagram": {
            "layers": d.layers,
            "nodes": [{"layer": n.layer, "reads": n.reads, "kv_layer": n.kv_layer,
                       "upward": n.upward, "sliding": n.sliding,
                       "cyclic_block": n.cyclic_block} for n in d.nodes],
            "read_edges": [list(e) for e in d.read_edges],
            "upward_edges": [list(e) for e in d.upward_edges],
            "cyclic_blocks": [list(x) for x in d.cyclic_blocks],
            "kv_layers": d.kv_layers,
        },
    }


def _random(preset, plan="standard", seed=1, precision="f32", **run):
    """Session.random(preset, plan='standard', seed=1, precision='f32', **run): a model of a
    preset's shape ('stories15m') with random weights drawn under `plan` (tests and speed only:
    use the trained models for anything you read)."""
    return Session(preset, random=True, seed=seed, precision=precision, plan=plan, **run)


Session.random = staticmethod(_random)
