"""The notebook runner: undeclared papermill parameters are rejected (on every notebook of the repository and
on a made-up one), values are typed like the defaults, and the kernel runs this Python without any
user-level kernel being written or used."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nbformat
import pytest

pytest.importorskip("papermill")

import jupyter_core.paths  # noqa: E402

from seqrec_lib import notebook_runner as runner  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def make_notebook(path: Path, parameters: str, body: str) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(parameters, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
    nbformat.write(nb, path)
    return path


@pytest.fixture
def tiny(tmp_path) -> Path:
    return make_notebook(tmp_path / "tiny.ipynb",
                         'model = "sasrec"  # which model\nepochs = 2\nlr = 0.001\nverbose = False\nextra = {}\n',
                         'import sys\nprint(model, epochs, lr, verbose, extra, sys.executable)\n'
                         'if model == "fail":\n    raise RuntimeError("the cell failed")\n')


# ------------------------------------------------------------------------------------------ parameters

@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_declares_profile_and_outputs_and_rejects_a_typo(notebook):
    declared = runner.declared_parameters(notebook)
    assert {"profile", "outputs"} <= set(declared)
    runner.check_parameters(notebook, ["profile", "outputs"])
    with pytest.raises(runner.NotebookParameterError, match=r"has no parameter 'profil' \(did you mean 'profile'\?\)"):
        runner.check_parameters(notebook, ["profile", "profil"])


def test_the_message_names_every_declared_parameter(tiny):
    with pytest.raises(runner.NotebookParameterError) as excinfo:
        runner.check_parameters(tiny, ["modle", "seed"])
    message = str(excinfo.value)
    assert "tiny.ipynb has no parameter 'modle' (did you mean 'model'?), 'seed'" in message
    assert message.endswith("it declares: model, epochs, lr, verbose, extra")


def test_a_notebook_without_parameters_accepts_none(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("x = 1")]
    nbformat.write(nb, tmp_path / "plain.ipynb")
    runner.check_parameters(tmp_path / "plain.ipynb", [])
    with pytest.raises(runner.NotebookParameterError, match="it declares: none"):
        runner.check_parameters(tmp_path / "plain.ipynb", ["x"])


@pytest.mark.parametrize("name, text, value", [
    ("model", "fame", "fame"), ("model", "12", "12"), ("epochs", "5", 5), ("lr", "0.01", 0.01), ("lr", "1", 1.0),
    ("verbose", "true", True), ("verbose", "False", False), ("extra", '{"d": 16}', {"d": 16}),
    ("extra", "plain text", "plain text"),
])
def test_values_are_typed_like_the_default(tiny, name, text, value):
    parsed = runner.parse_value(runner.declared_parameters(tiny), name, text)
    assert parsed == value and type(parsed) is type(value)


@pytest.mark.parametrize("name, text, message", [
    ("epochs", "five", "a whole number"), ("epochs", "2.5", "a whole number"), ("lr", "fast", "a number"),
    ("verbose", "nope", "true or false"),
])
def test_badly_typed_values_are_rejected(tiny, name, text, message):
    with pytest.raises(runner.NotebookParameterError, match=message):
        runner.parse_value(runner.declared_parameters(tiny), name, text)


def test_execute_rejects_an_undeclared_parameter_before_running(tiny, tmp_path):
    with pytest.raises(runner.NotebookParameterError, match="did you mean 'model'"):
        runner.execute(tiny, tmp_path / "out.ipynb", {"modle": "fame"})
    assert not (tmp_path / "out.ipynb").exists()


def test_command_line_typo_is_one_line_and_exit_2(tiny, tmp_path, capsys):
    assert runner.main([str(tiny), str(tmp_path / "out.ipynb"), "-p", "modle", "fame"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"{runner.PROG}: error: tiny.ipynb has no parameter 'modle'") and err.count("\n") == 1
    assert runner.main([str(tmp_path / "missing.ipynb"), str(tmp_path / "out.ipynb")]) == 2
    assert "missing.ipynb" in capsys.readouterr().err


# --------------------------------------------------------------------------------------------- kernels

@pytest.fixture
def jupyter_dirs(tmp_path, monkeypatch) -> tuple[Path, Path]:
    """(user data dir, environment prefix), both temporary: Jupyter's user-level and environment-level
    kernel folders point there; the user dir holds a 'seqrec' and a 'python3' kernel of another Python."""
    user, env = tmp_path / "user", tmp_path / "env"
    for name in ("seqrec", "python3"):
        folder = user / "kernels" / name
        folder.mkdir(parents=True)
        (folder / "kernel.json").write_text(json.dumps(
            {"argv": ["/other/env/bin/python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
             "display_name": "another environment", "language": "python"}))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(user))
    monkeypatch.delenv("JUPYTER_PATH", raising=False)
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")  # as outside a virtual environment: user first
    monkeypatch.setattr(jupyter_core.paths, "ENV_JUPYTER_PATH", [str(env / "share" / "jupyter")])
    return user, env


def _snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_kernel_is_installed_into_the_environment_and_user_kernels_are_left_alone(jupyter_dirs):
    user, env = jupyter_dirs
    before = _snapshot(user)
    folder = runner.ensure_kernel("seqrec", prefix=env)
    assert folder == env / "share" / "jupyter" / "kernels" / "seqrec"
    assert json.loads((folder / "kernel.json").read_text())["argv"][0] == sys.executable
    assert runner.find_kernel("seqrec") == folder  # this environment's kernel wins over the user's
    assert _snapshot(user) == before
    assert runner.ensure_kernel("seqrec", prefix=env) == folder  # already there: nothing to do
    assert _snapshot(user) == before
    assert os.environ["JUPYTER_PREFER_ENV_PATH"] == "0"  # preferring the environment was only temporary


def test_an_environment_kernel_of_a_generic_python_is_used_as_it_is(jupyter_dirs):
    _, env = jupyter_dirs
    folder = env / "share" / "jupyter" / "kernels" / "python3"
    folder.mkdir(parents=True)
    spec = json.dumps({"argv": ["python", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                       "display_name": "Python 3 (ipykernel)", "language": "python"})
    (folder / "kernel.json").write_text(spec)
    assert runner.ensure_kernel("python3", prefix=env) == folder
    assert (folder / "kernel.json").read_text() == spec


def test_a_kernel_shadowed_from_jupyter_path_is_an_error(jupyter_dirs, monkeypatch):
    user, env = jupyter_dirs
    monkeypatch.setenv("JUPYTER_PATH", str(user))  # highest priority, above the environment
    with pytest.raises(runner.KernelError, match="does not run"):
        runner.ensure_kernel("seqrec", prefix=env)


@pytest.mark.notebooks
def test_a_notebook_runs_on_this_python_even_with_a_user_kernel_of_another(tiny, tmp_path, monkeypatch, capsys):
    user = tmp_path / "user"
    folder = user / "kernels" / "python3"
    folder.mkdir(parents=True)
    (folder / "kernel.json").write_text(json.dumps({"argv": ["/other/env/bin/python", "-m", "ipykernel_launcher",
                                                             "-f", "{connection_file}"],
                                                    "display_name": "another", "language": "python"}))
    monkeypatch.setenv("JUPYTER_DATA_DIR", str(user))
    monkeypatch.setenv("JUPYTER_PREFER_ENV_PATH", "0")
    out = tmp_path / "out.ipynb"
    assert runner.main([str(tiny), str(out), "-p", "model", "fame", "-p", "epochs", "3", "-p", "verbose", "yes",
                        "--cwd", str(tmp_path)]) == 0
    printed = "".join(o.get("text", "") for o in nbformat.read(out, as_version=4).cells[-1].outputs)
    assert printed.split()[:5] == ["fame", "3", "0.001", "True", "{}"]
    assert printed.split()[-1] == sys.executable
    assert runner.main([str(tiny), str(out), "-p", "model", "fail"]) == 1
    err = capsys.readouterr().err
    assert "Exception encountered" in err and "the cell failed" in err
