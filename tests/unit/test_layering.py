"""The product packages never import the test rig, and the wheel never ships it (issue 23).

Dependencies point one way: client -> coordinator_sdk / data_providers -> programs, and devtools, tests and
bench sit outside and import the product. A product module importing devtools (or tests) would work in a
checkout and break once installed, since pyproject.toml ships only the product packages; both halves of
that are checked here by reading the files, without importing anything.
"""
from __future__ import annotations

import ast
import tomllib
from fnmatch import fnmatchcase
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PRODUCT = ("programs", "coordinator_sdk", "localnet", "data_providers", "client")
RIG = ("devtools", "tests", "bench")
FORBIDDEN = ("devtools", "tests")


def _include_patterns() -> list[str]:
    """setuptools' `packages.find include` patterns from pyproject.toml (what the wheel ships)."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    return list(config["tool"]["setuptools"]["packages"]["find"]["include"])


def _shipped(package: str) -> bool:
    """Whether setuptools' include patterns (fnmatch, as setuptools applies them) select `package`."""
    return any(fnmatchcase(package, pattern) for pattern in _include_patterns())


def imported_modules(tree: ast.AST) -> list[tuple[int, str]]:
    """(line, module) for every absolute import in `tree`, including importlib.import_module("x") and
    __import__("x") with a literal name; relative imports stay inside their own package and are skipped."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            if name in ("import_module", "__import__") and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def forbidden_imports(source: str) -> list[str]:
    """The imports of devtools or tests (the packages or any module in them) in one file's source."""
    hits = []
    for line, module in imported_modules(ast.parse(source)):
        if module.split(".")[0] in FORBIDDEN:
            hits.append(f"line {line}: {module}")
    return hits


def test_the_product_packages_are_exactly_what_pyproject_ships() -> None:
    top_level = sorted(p.name for p in REPO.iterdir() if (p / "__init__.py").is_file())
    assert sorted(name for name in top_level if _shipped(name)) == sorted(PRODUCT)


@pytest.mark.parametrize("package", [*RIG, *(f"{name}.sub" for name in RIG)])
def test_pyproject_does_not_ship_the_rig(package: str) -> None:
    assert not _shipped(package), f"pyproject.toml's packages.find include ships {package}"


def test_no_product_module_imports_devtools_or_tests() -> None:
    offenders = []
    files = [path for package in PRODUCT for path in sorted((REPO / package).rglob("*.py"))]
    assert len(files) > 100, "the walk found too few product modules: is REPO right?"
    for path in files:
        offenders += [f"{path.relative_to(REPO)} {hit}" for hit in forbidden_imports(path.read_text())]
    assert not offenders, "product modules import the rig:\n" + "\n".join(offenders)


@pytest.mark.parametrize("source", [
    "import devtools",
    "import devtools.sim_chain as sim",
    "from devtools.local_cluster import LocalCluster",
    "from devtools import chaos",
    "import tests.localnet_harness",
    "def f():\n    from devtools.fuzz import apply\n",
    "import importlib\nimportlib.import_module('devtools.demo')",
    "__import__('tests')",
])
def test_the_check_sees_each_form_of_import(source: str) -> None:
    assert forbidden_imports(source)


@pytest.mark.parametrize("source", [
    "import client.cli",
    "from coordinator_sdk import codec",
    "from . import devtools",
    "from .tests import x",
    "'devtools.sim_chain is the rig, see devtools/'",
    "import devtoolsx",
])
def test_the_check_leaves_other_imports_alone(source: str) -> None:
    assert not forbidden_imports(source)
