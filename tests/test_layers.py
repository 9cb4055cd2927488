"""The three layers of ``recos_utils`` (issue 24): every module's imports, parsed with ast.

* core imports neither chapters nor the runner;
* a chapter module (``chN_*``) imports the core and its own chapter's modules only;
* the runner imports the core and itself, never a chapter;
* no import cycle among the package's modules;
* a name is imported from the module that defines it (no re-export shims): every
  ``from recos_utils.X import name`` names something X defines, not something X imported.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parent.parent / "recos_utils"


def _modules() -> dict[str, Path]:
    return {".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): p
            for p in PKG.rglob("*.py")}


def _imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names imported from it) for every import of the package."""
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 \
                and node.module.startswith("recos_utils"):
            out.append((node.module, [a.name for a in node.names]))
        elif isinstance(node, ast.ImportFrom) and node.level:
            out.append(("<relative>", []))
        elif isinstance(node, ast.Import):
            out += [(a.name, []) for a in node.names if a.name.startswith("recos_utils")]
    return out


def _targets(module: str, names: list[str], modules: dict) -> list[str]:
    """The package modules an import statement reaches (``from pkg import mod`` included)."""
    sub = [f"{module}.{n}" for n in names if f"{module}.{n}" in modules]
    return sub or [module]


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "top"


def _chapter(module: str) -> str:
    return module.split(".")[-1].split("_")[0]          # "ch4" of recos_utils.chapters.ch4_x


MODULES = _modules()
GRAPH = {m: sorted({t for mod, names in _imports(p) for t in _targets(mod, names, MODULES)})
         for m, p in MODULES.items()}


def test_no_relative_imports():
    bad = [m for m, p in MODULES.items() if any(mod == "<relative>" for mod, _ in _imports(p))]
    assert not bad, f"relative imports hide the layer; use recos_utils.<layer>.<module>: {bad}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layer_rules(module):
    layer = _layer(module)
    for target in GRAPH[module]:
        tl = _layer(target)
        if tl in ("top",) or target == module:
            continue
        if layer == "core":
            assert tl == "core", f"{module} (core) imports {target} ({tl})"
        elif layer == "chapters" and tl == "chapters":
            assert _chapter(target) == _chapter(module), \
                f"{module} imports another chapter's module {target}"
        elif layer == "chapters":
            assert tl == "core", f"{module} (a chapter) imports {target} ({tl})"
        elif layer == "runner":
            assert tl in ("core", "runner"), f"{module} (runner) imports {target} ({tl})"


def test_chapter_modules_are_named_by_chapter():
    names = [m for m in MODULES if _layer(m) == "chapters" and not m.endswith("chapters")]
    assert names and all(_chapter(m)[:2] == "ch" and _chapter(m)[2:].isdigit() for m in names)


def test_no_import_cycles():
    state: dict[str, int] = {}

    def visit(m, stack):
        state[m] = 1
        for t in GRAPH.get(m, []):
            if t not in MODULES or t == m:
                continue
            if state.get(t) == 1:
                raise AssertionError("import cycle: " + " -> ".join(stack + [m, t]))
            if not state.get(t):
                visit(t, stack + [m])
        state[m] = 2

    for m in MODULES:
        if not state.get(m):
            visit(m, [])


def _defined(path: Path) -> set[str]:
    names = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for t in targets:
                names |= {n.id for n in ast.walk(t) if isinstance(n, ast.Name)}
    return names


def test_names_come_from_the_module_that_defines_them():
    bad = []
    for m, p in MODULES.items():
        for mod, names in _imports(p):
            if mod not in MODULES or mod == "<relative>":
                continue
            defined = _defined(MODULES[mod])
            bad += [f"{m}: {n} from {mod}" for n in names
                    if f"{mod}.{n}" not in MODULES and n not in defined]
    assert not bad, "re-exported names (import them from their defining module): " + ", ".join(bad)


def test_the_rules_can_fail(tmp_path):
    """The checker itself: a core module importing a chapter is caught."""
    src = "from recos_utils.chapters.ch2_ablation import ablation_name\n"
    (tmp_path / "m.py").write_text(src)
    (mod, names), = _imports(tmp_path / "m.py")
    assert _layer(_targets(mod, names, MODULES)[0]) == "chapters"


def test_notebooks_use_names_where_they_are_defined():
    """No re-export shim in the chapters either: ``alias.name`` in a notebook, with
    ``alias`` a module of the package, names something that module defines."""
    import json

    bad = []
    for nb_path in sorted((PKG.parent / "book").glob("[0-9][0-9]_*.ipynb")):
        src = "\n".join("".join(c["source"]) for c in json.loads(nb_path.read_text())["cells"]
                        if c["cell_type"] == "code")
        tree = ast.parse(src)
        aliases = {}
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("recos_utils"):
                for a in node.names:
                    full = f"{node.module}.{a.name}"
                    if full in MODULES:
                        aliases[a.asname or a.name] = full
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id in aliases:
                mod = aliases[node.value.id]
                if node.attr not in _defined(MODULES[mod]):
                    bad.append(f"{nb_path.name}: {node.value.id}.{node.attr} ({mod} does not "
                               f"define it)")
    assert not bad, bad
