# Plans, shapes and the simulator from Python against the CLI's --json output.
import json

import pytest

import kvlab
from conftest import SOURCE_DIR


@pytest.mark.parametrize("spec,shape", [
    ("lckv:2", ["--layers", "8"]),
    ("cla:2", ["--layers", "20", "--kv-heads", "1", "--head-dim", "128"]),
    ("0s_1s_2_2", ["--layers", "4", "--kv-heads", "2", "--head-dim", "64"]),
    ("sandwich-middle:4", ["--model", "tinyllama-1.1b"]),
    ("yoco", ["--model", str(SOURCE_DIR / "models" / "tiny-standard")]),
])
def test_plan_report_matches_kvlab_plan_json(kvlab_cli, spec, shape):
    cli = json.loads(kvlab_cli("plan", spec, *shape, "--json", "--prompt", "7").stdout)
    kw = {}
    it = iter(shape)
    for flag, value in zip(it, it):
        key = flag.lstrip("-").replace("-", "_")
        kw[key] = int(value) if value.isdigit() else value
    assert kvlab.plan_report(spec, prompt=7, **kw) == cli


def test_plan_facts():
    p = kvlab.Plan("lckv:2", 8)
    assert p.layers == 8 and p.text == "0_6_6_6_6_6_6_7" and p.map == [0, 6, 6, 6, 6, 6, 6, 7]
    assert p.kv_layers == [0, 6, 7] and p.num_kv_layers == 3
    assert p.upward_edges == [(1, 6), (2, 6), (3, 6), (4, 6), (5, 6)]
    assert p.cyclic_blocks == [(1, 6)] and p.has_upward
    assert p.readers(6) == [1, 2, 3, 4, 5, 6] and p.readers_map[0] == [0]
    assert p.kv_of(3) == 6 and p.is_upward(3) and not p.is_kv_layer(3)
    d = p.diagram()
    assert [n.reads for n in d.nodes] == p.map
    assert d.nodes[0].cyclic_block is None and d.nodes[2].cyclic_block == 0
    assert d.upward_edges == p.upward_edges and d.kv_layers == p.kv_layers
    assert p.bytes_per_token(4, 64, "f16") == 2 * 3 * 4 * 64 * 2
    assert kvlab.Plan.from_map([0, 0, 2, 2]) == kvlab.Plan("cla:2", 4)
    assert repr(kvlab.Plan("cla:2", 4)) == "kvlab.Plan('0_0_2_2')"
    assert "lckv:W" in kvlab.plan_generators()


def test_plan_errors_name_field_and_value():
    with pytest.raises(kvlab.Error, match="nonsense"):
        kvlab.Plan("nonsense:3", 4)
    with pytest.raises(kvlab.Error, match="kv_layer = 1"):
        kvlab.Plan("cla:2", 4).readers(1)
    with pytest.raises(kvlab.Error, match="layer = 9"):
        kvlab.Plan("cla:2", 4).kv_of(9)
    with pytest.raises(kvlab.Error, match="sliding"):
        kvlab.Plan.from_map([0, 0], [True])
    assert issubclass(kvlab.Error, ValueError)


def test_plan_error_is_the_clis_message(kvlab_cli):
    r = kvlab_cli("plan", "cla:0", "--layers", "4", check=False)
    assert r.returncode == 2
    with pytest.raises(kvlab.Error) as e:
        kvlab.Plan("cla:0", 4)
    assert r.stderr.strip() == "kvlab: error: " + str(e.value)


def test_simulate_matches_kvlab_simulate_json(kvlab_cli):
    cli = json.loads(kvlab_cli("simulate", "--model", "llama-2-7b", "--plan", "cla:2", "--plan",
                               "lckv:2", "--gpu", "a100-80gb", "--prompt", "2048", "--gen", "256",
                               "--policy", "h2o", "--budget", "25%", "--json").stdout)
    s = kvlab.simulate("llama-2-7b", ["cla:2", "lckv:2"], "a100-80gb", prompt=2048, gen=256,
                       policy="h2o", budget="25%")
    sides = [(cli["plans"][0], s.plans[0]), (cli["plans"][1], s.plans[1]),
             (cli["standard"], s.standard)]
    for want, got in sides:
        py = kvlab.to_dict(got)
        for key, value in want.items():  # every field, nested decode/prefill included
            if key == "ratio_to_standard":  # the CLI's comparison, not a figure of the plan
                continue
            if isinstance(value, dict):
                for k, v in value.items():
                    if k == "bound":  # the CLI's word for memory_bound
                        assert py[key]["memory_bound"] == (v == "memory")
                    else:
                        assert py[key][k] == v, (want["spec"], key, k)
            else:
                assert py[key] == value, (want["spec"], key)
    assert s.plan.spec == "cla:2" and [p.spec for p in s.plans] == ["cla:2", "lckv:2"]
    assert s.plans[0].max_batch > s.standard.max_batch
    assert s.options.policy == "h2o" and s.options.budget == 512 and not s.options.ideal
    assert s.gpu.name == "a100-80gb" and s.options.prompt == 2048 and s.notes == cli["notes"]
    assert "PlanSimulation(" in repr(s.plan) and "decode=DecodeFigures(" in repr(s.plan)
    ideal = kvlab.simulate("llama-2-7b", "cla:2", "a100-80gb", prompt=2048, gen=256, ideal=True)
    assert ideal.standard.max_batch == 52 and ideal.plan.max_batch == 107
    with pytest.raises(kvlab.Error, match="gpu"):
        kvlab.simulate("llama-2-7b", gpu="no-such-gpu")
    with pytest.raises(kvlab.Error, match="--budget"):
        kvlab.simulate("llama-2-7b", budget="64")
    with pytest.raises(kvlab.Error, match="--attention"):
        kvlab.simulate("llama-2-7b", attention="sdpa")


def test_model_config_and_models():
    names = [m.name for m in kvlab.models()]
    assert {"tiny-standard", "tiny-cla2-mqa", "tiny-lckv2"} <= set(names)
    c = kvlab.model_config("tiny-standard")
    assert c.num_hidden_layers >= 2 and c.vocab_size > 256
    assert kvlab.model_config("llama-2-7b").num_hidden_layers == 32
    with pytest.raises(kvlab.Error, match="no-such-model"):
        kvlab.model_config("no-such-model")
