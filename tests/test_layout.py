"""The layout's rules that a grep can check: scripts are thin command lines over the library, never importing one
another, and no test puts ``scripts/`` on ``sys.path``."""

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = sorted((ROOT / "scripts").glob("*.py"))


def _imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names}
    return names | {node.module.split(".")[0] for node in ast.walk(tree)
                    if isinstance(node, ast.ImportFrom) and node.module and not node.level}


def test_no_script_imports_another_script():
    siblings = {p.stem for p in SCRIPTS}
    offenders = {p.name: sorted(_imported_modules(p) & siblings) for p in SCRIPTS}
    assert not {k: v for k, v in offenders.items() if v}, offenders


def test_no_test_puts_scripts_on_sys_path():
    for path in (ROOT / "tests").glob("*.py"):
        if path.name == Path(__file__).name:
            continue
        text = path.read_text().lower()
        assert not ("sys.path" in text and "scripts" in text.split("sys.path", 1)[1][:120]), path.name
