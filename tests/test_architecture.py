"""The package's layers and the absence of import cycles, as `lint-imports` and an AST count check them."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "behaviorlm_plugin"
LINT = Path(sys.executable).parent / "lint-imports"
MAX_DEFERRED = 15
"""Imports of the package's own modules inside functions, outside cli.py: each defers a heavy third-party import."""

pytestmark = pytest.mark.skipif(not LINT.exists(), reason="import-linter is not installed (pip install -e .[dev])")


def lint(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--no-cache"],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(cwd), "PATH": str(LINT.parent)},
        timeout=120,
    )


def test_the_package_keeps_its_layers_and_has_no_cycles():
    res = lint(ROOT)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "2 kept, 0 broken" in res.stdout


def test_an_upward_import_breaks_the_layers_contract(tmp_path):
    """The contract is live: one hparams module importing from runs (as config classes once did) fails it."""
    shutil.copytree(PACKAGE, tmp_path / "behaviorlm_plugin", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    bad = tmp_path / "behaviorlm_plugin" / "hparams" / "selection_args.py"
    bad.write_text(
        bad.read_text() + "\n\ndef _late():\n    from behaviorlm_plugin.tuning.strategies import strategy_names\n"
    )
    res = lint(tmp_path)
    text = " ".join(res.stdout.split())  # the report wraps long lines
    assert res.returncode != 0
    assert "behaviorlm_plugin.hparams is not allowed to import behaviorlm_plugin.tuning" in text
    assert "hparams.selection_args -> behaviorlm_plugin.tuning.strategies" in text


def _is_own(node: ast.Import | ast.ImportFrom) -> bool:
    if isinstance(node, ast.ImportFrom):
        return node.level > 0 or (node.module or "").startswith("behaviorlm_plugin")
    return any(a.name.startswith("behaviorlm_plugin") for a in node.names)


def deferred_own_imports() -> list[tuple[str, int, str]]:
    """(file, line, source line) of every own-package import inside a function body."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for fn in ast.walk(ast.parse(path.read_text())):
            if not isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for node in ast.walk(fn):
                if isinstance(node, ast.Import | ast.ImportFrom) and _is_own(node):
                    found.append((str(path.relative_to(ROOT)), node.lineno, lines[node.lineno - 1]))
    return sorted(set(found))


def test_deferred_own_imports_are_few_and_each_says_why():
    outside_cli = [d for d in deferred_own_imports() if not d[0].endswith("behaviorlm_plugin/cli.py")]
    assert len(outside_cli) <= MAX_DEFERRED, outside_cli
    silent = [d for d in outside_cli if "# deferred:" not in d[2]]
    assert not silent, f"a deferred import needs a '# deferred: <heavy import>' comment: {silent}"
