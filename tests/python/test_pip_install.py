# `pip install .` into a fresh virtual environment (Debian's numpy through the system site
# packages; scikit-build-core from the wheels scripts/setup.sh keeps in .venv/wheels: offline),
# then `import kvlab` from another directory runs a shipped model found by name.
import os
import pathlib
import subprocess
import sys
import textwrap

from conftest import SOURCE_DIR


def test_pip_install_into_a_fresh_venv(tmp_path):
    wheels = SOURCE_DIR / ".venv" / "wheels"
    assert list(wheels.glob("scikit_build_core-*.whl")), f"run scripts/setup.sh: no {wheels}"
    venv = tmp_path / "venv"
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", str(venv)],
                   check=True)
    py = venv / "bin" / "python"
    # The build directory outlives the test (KVLAB_PIP_BUILD_DIR: build/pip, beside build/cpu),
    # so a rerun recompiles only what changed; and as it sits as deep as build/cpu, every
    # compile command of the libraries is the cpu build's, which ccache then serves.
    build_dir = os.environ.get("KVLAB_PIP_BUILD_DIR", str(tmp_path / "build"))
    # CXX as CMake picks it for the cpu preset (scikit-build-core would take Python's
    # x86_64-linux-gnu-g++, another command line for ccache).
    env = dict(os.environ, CMAKE_BUILD_PARALLEL_LEVEL="2", PIP_NO_INDEX="1", CXX="/usr/bin/c++",
               PIP_FIND_LINKS=str(wheels), PIP_DISABLE_PIP_VERSION_CHECK="1")
    env.pop("PYTHONPATH", None)
    env.pop("KVLAB_MODELS", None)
    r = subprocess.run([str(py), "-m", "pip", "install", "-q",
                        f"--config-settings=build-dir={build_dir}", str(SOURCE_DIR)],
                       env=env, capture_output=True, text=True, timeout=540)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    check = textwrap.dedent("""
        import os, kvlab
        assert os.path.dirname(kvlab.__file__).startswith(os.environ["VENV"]), kvlab.__file__
        assert kvlab.models_dir().startswith(os.environ["VENV"]), kvlab.models_dir()  # package data
        assert "tiny-standard" in [m.name for m in kvlab.models()], kvlab.models_dir()
        s = kvlab.Session("tiny-standard")
        print(s.generate("A fool and his money", max_new=8).text)
        try:
            kvlab.Plan("nope", 4)
        except kvlab.Error as e:
            print("error:", e)
    """)
    run = subprocess.run([str(py), "-c", check], cwd=tmp_path, capture_output=True, text=True,
                         env=dict(env, VENV=str(venv)), timeout=120)
    assert run.returncode == 0, run.stderr
    assert "error: plan = nope is invalid" in run.stdout, run.stdout
