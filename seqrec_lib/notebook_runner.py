"""Run a notebook with papermill, safely: parameters the notebook does not declare are rejected (papermill
itself only warns and runs with the defaults), and the Jupyter kernel is one that runs this very Python.

Kernels: the kernel ``name`` is looked up with this environment's kernels ahead of user-level ones
(``JUPYTER_PREFER_ENV_PATH``); if it is missing or runs another interpreter, a kernelspec for this Python is
installed into this environment (``sys.prefix``, like ``ipykernel install --sys-prefix``). User-level
kernels, which other environments may own, are never written.

Command line (``run_all.sh`` uses it)::

    python -m seqrec_lib.notebook_runner NOTEBOOK OUTPUT [-p NAME VALUE ...] [-k KERNEL] [--cwd DIR]
                                         [--progress LABEL]

Exit status 0; 1 when a cell fails (its traceback on stderr, after papermill's "Exception encountered"
banner); 2 for an undeclared parameter, a badly typed value, a profile, model, dataset or executor that does not
exist, or an unusable kernel (one line, before any kernel starts).
"""

from __future__ import annotations

import argparse
import ast
import difflib
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, NoReturn

DEFAULT_KERNEL = "python3"
PROG = "python -m seqrec_lib.notebook_runner"
# kernel commands that jupyter_client replaces with the launching interpreter (sys.executable)
_GENERIC_PYTHONS = frozenset({"python", f"python{sys.version_info[0]}", "python%d.%d" % sys.version_info[:2]})


class NotebookParameterError(ValueError):
    """A parameter the notebook does not declare, or a value that does not fit the declared default."""


class KernelError(RuntimeError):
    """No kernel of the requested name runs this Python, and installing one would not help."""


# ------------------------------------------------------------------------------------------ parameters


def declared_parameters(notebook: str | Path) -> dict[str, dict[str, Any]]:
    """The parameters of ``notebook``'s cell tagged ``parameters``: name → papermill's description (its
    ``default`` is the source text of the default value). Empty when there is no such cell."""
    import papermill

    return papermill.inspect_notebook(str(notebook))


def check_parameters(notebook: str | Path, names: Iterable[str],
                     declared: Mapping[str, Any] | None = None) -> None:
    """Raise NotebookParameterError unless every one of ``names`` is a declared parameter of ``notebook``
    (``declared``: its ``declared_parameters``, if already read)."""
    declared = declared_parameters(notebook) if declared is None else declared
    unknown = [name for name in names if name not in declared]
    if not unknown:
        return
    hints = []
    for name in unknown:
        close = difflib.get_close_matches(name, declared, n=1)
        hints.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    what = ", ".join(declared) if declared else "none (it has no cell tagged 'parameters')"
    raise NotebookParameterError(f"{Path(notebook).name} has no parameter {', '.join(hints)}; it declares: {what}")


def parse_value(declared: Mapping[str, Any], name: str, text: str) -> Any:
    """The command-line value ``text`` of the declared parameter ``name``, typed like its default: the text
    for a string default, a strict int/float/bool for those, a Python literal otherwise (else the text)."""
    default = _literal(declared[name]["default"])
    if isinstance(default, str):
        return text
    if isinstance(default, bool):
        return _parse_bool(name, text)
    if isinstance(default, (int, float)):
        return _parse_number(name, text, type(default))
    value = _literal(text)
    return text if value is _NOT_A_LITERAL else value


_NOT_A_LITERAL = object()


def _literal(source: str) -> Any:
    try:
        return ast.literal_eval(source)
    except (ValueError, SyntaxError):
        return _NOT_A_LITERAL


def _parse_bool(name: str, text: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "yes", "1"):
        return True
    if value in ("false", "no", "0"):
        return False
    raise NotebookParameterError(f"parameter {name!r} is true or false, got {text!r}")


def _parse_number(name: str, text: str, kind: type) -> int | float:
    try:
        return kind(text)
    except ValueError:
        raise NotebookParameterError(f"parameter {name!r} is {'a whole number' if kind is int else 'a number'}, "
                                     f"got {text!r}") from None


def _profiles() -> list[str]:
    from .profiles import PROFILES

    return list(PROFILES)


def _models() -> list[str]:
    from .models.registry import MODELS

    return sorted(MODELS)


def _datasets() -> list[str]:
    from .data.registry import DATASETS

    return list(DATASETS)


def _executors() -> list[str]:
    from .executors import EXECUTORS

    return list(EXECUTORS)


def uses_library(notebook: str | Path) -> bool:
    """True when a code cell of ``notebook`` mentions ``seqrec_lib``: its ``profile``, ``model``, ... parameters
    then name this library's (``check_values``); another notebook's ``model`` may mean anything."""
    cells = json.loads(Path(notebook).read_text(encoding="utf-8")).get("cells", [])
    return any(c.get("cell_type") == "code" and "seqrec_lib" in "".join(c.get("source", "")) for c in cells)


NAMED_VALUES: dict[str, tuple[Callable[[], list[str]], bool]] = {
    "profile": (_profiles, False), "model": (_models, False), "dataset": (_datasets, False),
    "datasets": (_datasets, True), "executor": (_executors, False)}
"""Parameters whose value names a profile, model, dataset or executor: name → (the known names, whether the value
is a comma-separated list). An empty dataset (list) means the profile's own, as the notebooks declare."""


def check_values(notebook: str | Path, parameters: Mapping[str, Any]) -> None:
    """Raise NotebookParameterError when, in a notebook that ``uses_library``, a parameter of ``NAMED_VALUES``
    names something that does not exist (the notebook would otherwise start its kernel and fail in a cell with a
    traceback)."""
    if not any(name in NAMED_VALUES for name in parameters) or not uses_library(notebook):
        return
    for name, value in parameters.items():
        if name not in NAMED_VALUES or not isinstance(value, str):
            continue
        known_of, is_list = NAMED_VALUES[name]
        values = [v.strip() for v in value.split(",") if v.strip()] if is_list else [value]
        if name == "dataset" and not value:      # the profile's own dataset
            continue
        known = known_of()
        for item in values:
            if item not in known:
                close = difflib.get_close_matches(item, known, n=1)
                hint = f" (did you mean {close[0]!r}?)" if close else ""
                raise NotebookParameterError(f"unknown {name.rstrip('s')} {item!r} in -p {name} {value}{hint}; "
                                             f"known: {', '.join(known)}")


# --------------------------------------------------------------------------------------------- kernels

_KERNEL_NAME = re.compile(r"[a-z0-9._-]+", re.IGNORECASE)   # jupyter_client's rule for kernelspec names


def check_kernel_name(name: str) -> None:
    """Raise KernelError unless ``name`` can name a kernelspec (letters, digits, '.', '_', '-')."""
    if _KERNEL_NAME.fullmatch(name):
        return
    from jupyter_client.kernelspec import KernelSpecManager

    with environment_kernels_first():
        known = sorted(KernelSpecManager().find_kernel_specs())
    raise KernelError(f"bad kernel name {name!r} (-k): a kernel name has only letters, digits, '.', '_' and '-'; "
                      f"known kernels: {', '.join(known) or 'none'}")


@contextmanager
def environment_kernels_first() -> Iterator[None]:
    """Within the block, Jupyter finds this environment's kernels before user-level ones."""
    before = os.environ.get("JUPYTER_PREFER_ENV_PATH")
    os.environ["JUPYTER_PREFER_ENV_PATH"] = "1"
    try:
        yield
    finally:
        if before is None:
            del os.environ["JUPYTER_PREFER_ENV_PATH"]
        else:
            os.environ["JUPYTER_PREFER_ENV_PATH"] = before


def runs_this_python(kernel_dir: str | Path) -> bool:
    """True when the kernelspec in ``kernel_dir`` starts this interpreter: its command is a generic
    ``python``/``python3`` (which jupyter_client replaces by the launching interpreter) or this very path."""
    argv = json.loads((Path(kernel_dir) / "kernel.json").read_text()).get("argv") or [""]
    return argv[0] in _GENERIC_PYTHONS or os.path.abspath(argv[0]) == os.path.abspath(sys.executable)


def find_kernel(name: str) -> Path | None:
    """The folder of the kernelspec Jupyter would use for ``name`` (this environment's first), or None."""
    from jupyter_client.kernelspec import KernelSpecManager

    with environment_kernels_first():
        found = KernelSpecManager().find_kernel_specs().get(name)
    return None if found is None else Path(found)


def ensure_kernel(name: str = DEFAULT_KERNEL, prefix: str | Path = sys.prefix) -> Path:
    """The folder of a kernelspec ``name`` that runs this Python, installing it into the environment at
    ``prefix`` when the name is missing or runs another interpreter. Never writes user-level kernels.

    Raises KernelError when the installed kernel would still be shadowed (e.g. by one on ``$JUPYTER_PATH``)
    or ``prefix`` is not writable."""
    check_kernel_name(name)
    found = find_kernel(name)
    if found is not None and runs_this_python(found):
        return found
    from ipykernel.kernelspec import install

    try:
        display_name = None if name == DEFAULT_KERNEL else f"Python ({name})"
        install(kernel_name=name, prefix=str(prefix), display_name=display_name)
    except OSError as err:
        raise KernelError(f"kernel {name!r} does not run {sys.executable} and it cannot be installed into this "
                          f"environment ({err}); use a virtual environment or conda environment you own") from None
    found = find_kernel(name)
    if found is None or not runs_this_python(found):
        raise KernelError(f"kernel {name!r} resolves to {found}, which does not run {sys.executable}, ahead of "
                          f"this environment's; pick another name with --kernel")
    return found


# ------------------------------------------------------------------------------------------- execution


def execute(notebook: str | Path, output: str | Path, parameters: Mapping[str, Any] | None = None,
            kernel: str = DEFAULT_KERNEL, cwd: str | Path | None = None, progress: str | None = None,
            log_output: bool = False) -> Any:
    """Run ``notebook`` into ``output`` with papermill and return the executed notebook.

    ``parameters`` are checked against the notebook's declared ones first (NotebookParameterError);
    ``kernel`` must run this Python (see ``ensure_kernel``); ``cwd`` is the working directory of the
    kernel; ``progress`` shows "LABEL  cell n/m  elapsed" on stdout while it runs (terminals only; redrawn
    every second, so a long cell is seen to be running);
    ``log_output`` copies the cells' output to the ``papermill`` logger.
    """
    import papermill

    parameters = dict(parameters or {})
    check_parameters(notebook, parameters)
    check_values(notebook, parameters)
    ensure_kernel(kernel)
    bar = False if progress is None else {
        "desc": progress, "file": sys.stdout, "leave": False, "disable": None,
        "bar_format": "{desc:<28} cell {n_fmt}/{total_fmt}  {elapsed}"}
    with environment_kernels_first(), _ticking(enabled=progress is not None):
        return papermill.execute_notebook(str(notebook), str(output), parameters=parameters, kernel_name=kernel,
                                          cwd=None if cwd is None else str(cwd), progress_bar=bar,
                                          log_output=log_output)


@contextmanager
def _ticking(enabled: bool, seconds: float = 1.0) -> Iterator[None]:
    """While the block runs, redraw the live tqdm bars every ``seconds`` (their elapsed time then moves even
    when no cell finishes for minutes)."""
    from tqdm.std import tqdm

    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(seconds):
            for bar in list(tqdm._instances):
                bar.refresh()

    thread = threading.Thread(target=tick, daemon=True) if enabled else None
    if thread is not None:
        thread.start()
    try:
        yield
    finally:
        stop.set()
        if thread is not None:
            thread.join()


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def main(argv: list[str] | None = None) -> int:
    """The command line (see the module docstring)."""
    parser = _Parser(prog=PROG, description="Run a notebook with papermill, rejecting parameters it does not "
                                            "declare, on a kernel that runs this Python.")
    parser.add_argument("notebook", type=Path)
    parser.add_argument("output", type=Path)
    parser.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help="a parameter, typed like the notebook's default")
    parser.add_argument("-k", "--kernel", default=DEFAULT_KERNEL, help=f"(default: {DEFAULT_KERNEL})")
    parser.add_argument("--cwd", type=Path, default=None, help="working directory of the kernel")
    parser.add_argument("--progress", metavar="LABEL", default=None,
                        help="show LABEL and the running cell on stdout (terminals only)")
    args = parser.parse_args(argv)
    from papermill.exceptions import PapermillExecutionError

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    try:
        check_kernel_name(args.kernel)
        declared = declared_parameters(args.notebook)
        check_parameters(args.notebook, [name for name, _ in args.parameter], declared)
        parameters = {name: parse_value(declared, name, text) for name, text in args.parameter}
        check_values(args.notebook, parameters)
        execute(args.notebook, args.output, parameters, args.kernel, args.cwd, args.progress, log_output=True)
    except (NotebookParameterError, KernelError, FileNotFoundError) as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except PapermillExecutionError as err:
        print(err, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
