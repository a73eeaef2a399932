"""The package's layers, read from every module's imports (function-level imports included).

docs/architecture.md draws the layers; this test holds the code to the drawing:

- the pure core imports no I/O library (a dry run must predict production: the core never
  reads a clock, a file, the network or a database) and opens no file itself;
- only ``runner.cli`` imports click, and only ``runner.store`` a database driver;
- a layer imports only from the layers below it (``LAYERS``);
- no two modules import each other, directly or round a longer loop, not even from inside a
  function (a lazy import still ties the two modules together).
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass, field
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "runner"

# Lowest first; a module may import modules of its own layer and of the layers before it.
LAYERS = ["base", "core", "language", "delivery", "simulation", "store", "production", "serve", "review", "cli"]
# Modules directly in runner/: the package itself and small helpers every layer may use; __main__ is the CLI.
TOP_LEVEL = {"runner": "base", "runner.collector": "base", "runner.__main__": "cli"}

IO_LIBRARIES = {
    "sqlite3", "sqlite_utils", "smtplib", "click", "jinja2", "yaml", "http", "socket", "ssl", "urllib",
    "requests", "subprocess", "asyncio", "aiosmtpd", "email", "os", "shutil", "tempfile", "io", "time",
    "rich", "jsonschema", "jsonschema_rs", "css_inline", "inscriptis", "lxml", "logging", "threading",
}
IO_BUILTINS = {"open", "input"}  # the core opens no file and reads no terminal (errors may show() themselves)


@dataclass
class Module:
    name: str
    path: Path
    runner_imports: dict[str, int] = field(default_factory=dict)  # imported module -> line of the first import
    libraries: dict[str, int] = field(default_factory=dict)  # top-level library name -> line
    builtin_calls: dict[str, int] = field(default_factory=dict)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _read_package() -> dict[str, Module]:
    modules = {_module_name(path): Module(_module_name(path), path) for path in sorted(PACKAGE.rglob("*.py"))}
    for module in modules.values():
        _read_imports(module, modules)
    return modules


def _known(name: str, modules: dict[str, Module]) -> str:
    """The module an import names (``runner.core.model.Journey`` -> ``runner.core.model``)."""
    while name not in modules and "." in name:
        name = name.rpartition(".")[0]
    return name


def _read_imports(module: Module, modules: dict[str, Module]) -> None:
    package = module.name if module.path.name == "__init__.py" else module.name.rpartition(".")[0]
    for node in ast.walk(ast.parse(module.path.read_text(encoding="utf-8"), str(module.path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..core import y
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
        else:
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in IO_BUILTINS:
                module.builtin_calls.setdefault(node.func.id, node.lineno)
            continue
        for name in names:
            if name == "runner" or name.startswith("runner."):
                target = _known(name, modules)
                if target != module.name:
                    module.runner_imports.setdefault(target, node.lineno)
            elif name.split(".")[0] != "__future__":
                module.libraries.setdefault(name.split(".")[0], node.lineno)


def layer_of(name: str) -> str:
    if name in TOP_LEVEL:
        return TOP_LEVEL[name]
    return name.split(".")[1]


MODULES = _read_package()


def _where(module: Module, line: int) -> str:
    return f"{module.path.relative_to(PACKAGE.parent)}:{line}"


def test_every_module_belongs_to_a_layer():
    assert {layer_of(name) for name in MODULES} <= set(LAYERS), "a new folder in runner/ needs a place in LAYERS"


def test_the_core_imports_no_io_library_and_opens_nothing():
    found = [f"{_where(m, line)}: {kind} {name}"
             for m in MODULES.values() if layer_of(m.name) == "core"
             for kind, names in (("imports", m.libraries), ("calls", m.builtin_calls))
             for name, line in names.items() if kind == "calls" or name in IO_LIBRARIES]
    assert not found, "the pure core must stay free of I/O:\n" + "\n".join(found)


def test_only_the_cli_imports_click():
    found = [_where(m, m.libraries["click"]) for m in MODULES.values()
             if "click" in m.libraries and layer_of(m.name) != "cli"]
    assert not found, "only runner.cli may import click:\n" + "\n".join(found)


DATABASE_DRIVERS = {"sqlite3", "sqlite_utils", "psycopg", "psycopg_pool"}


def test_only_the_store_imports_a_database_driver():
    """Above the store, a database is the Store protocol and the StoreError family: no driver's
    exception can be caught (or leak) anywhere else, whichever backend is in use."""
    found = [_where(m, line) for m in MODULES.values() if layer_of(m.name) != "store"
             for library, line in m.libraries.items() if library in DATABASE_DRIVERS]
    assert not found, "only runner.store may import a database driver:\n" + "\n".join(found)


def test_layers_import_only_from_below():
    rank = {layer: n for n, layer in enumerate(LAYERS)}
    found = [f"{_where(m, line)}: {m.name} ({layer_of(m.name)}) imports {target} ({layer_of(target)})"
             for m in MODULES.values() for target, line in m.runner_imports.items()
             if rank[layer_of(target)] > rank[layer_of(m.name)]]
    assert not found, "a layer imports from a layer above it (docs/architecture.md):\n" + "\n".join(found)


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        list(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as error:
        return error.args[1]
    return None


def test_no_import_cycles_not_even_through_function_level_imports():
    cycle = find_cycle({name: set(m.runner_imports) for name, m in MODULES.items()})
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_the_checks_see_lazy_imports_and_cycles(tmp_path: Path):
    """The reader finds an import inside a function, and the cycle check reports a loop of three."""
    source = tmp_path / "lazy.py"
    source.write_text("def f():\n    from runner.review import markdown\n    import sqlite3\n", encoding="utf-8")
    module = Module("runner.simulation.lazy", source)
    _read_imports(module, {**MODULES, module.name: module})
    assert module.runner_imports == {"runner.review.markdown": 2} and module.libraries == {"sqlite3": 3}
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_layer_names_are_the_folders():
    folders = {path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists()}
    assert folders == set(LAYERS) - {"base"}
