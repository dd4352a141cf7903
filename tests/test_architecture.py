"""The declared layer order of docs/ARCHITECTURE.md, checked on every import in the package.

Every ``import`` and ``from ... import`` statement is read with :mod:`ast`, at module level and
inside functions (lazy imports count: they run the same dependency, only later). A module may
import its own subpackage and any lower layer; never a higher layer, never a sibling top stage
(``synth``, ``reconstruct``, ``animate``), and no two subpackages may import each other through
any chain. Imports by name at run time (``importlib.import_module``) are not seen; the project
uses them only inside one subpackage (model and CLI verb registries).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import mmface4d

PACKAGE = Path(mmface4d.__file__).resolve().parent
ARCHITECTURE_DOC = Path(__file__).resolve().parents[1] / "docs" / "ARCHITECTURE.md"

#: Lowest first. A unit is a subpackage (``render``) or a top-level module (``errors``); the
#: package's own ``__init__`` (the version) is ``mmface4d``.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core",
        (
            "mmface4d",
            "constants",
            "errors",
            "atomic",
            "settings",
            "batch",
            "emotions",
            "_optional",
            "cache",
        ),
    ),
    ("geometry", ("geometry",)),
    ("facemodel", ("facemodel",)),
    ("render", ("render",)),
    ("audio", ("audio",)),
    ("data", ("data",)),
    ("export", ("export",)),
    ("capture", ("capture",)),
    ("character", ("character",)),
    ("stages", ("synth", "reconstruct", "animate")),
    ("application", ("cli", "server", "demo", "__main__")),
)
#: Layers whose units are siblings: they never import each other.
SIBLING_LAYERS = frozenset({"stages"})
#: Known departures, (importing module, imported module) -> why; each must still exist.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("mmface4d.animate.api", "mmface4d.synth.speech"): (
        "animate(text=...) speaks the text with the synthetic voice; the speech engine "
        "belongs below the stages (beside audio)"
    ),
}


@dataclass(frozen=True)
class Import:
    """One import statement: ``source`` (a module) imports ``target`` at ``path:line``."""

    source: str
    target: str
    path: str
    line: int

    def __str__(self) -> str:
        return f"{self.path}:{self.line} {self.source} imports {self.target}"


def unit_of(module: str) -> str:
    """``mmface4d.render.video`` -> ``render``; ``mmface4d.errors`` -> ``errors``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def layer_of(unit: str) -> int | None:
    """Index of ``unit``'s layer in :data:`LAYERS` (None if undeclared)."""
    return next((i for i, (_, units) in enumerate(LAYERS) if unit in units), None)


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """``.../mmface4d/render/video.py`` -> ``mmface4d.render.video``; an ``__init__.py`` is its
    package."""
    parts = [package.name, *path.relative_to(package).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_in_source(
    source: str, module: str, is_package: bool, path: str, known: set[str]
) -> list[Import]:
    """Every import of ``mmface4d`` modules in ``source``, module level and inside functions.

    ``from mmface4d import facemodel`` names the subpackage (when ``known`` holds it), else the
    package itself; relative imports are resolved against ``module``.
    """
    here = module if is_package else module.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(ast.parse(source)):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = here.split(".")[: len(here.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                targets.append(candidate if candidate in known else base)
        for target in dict.fromkeys(targets):  # `from m import a, b` is one import of m
            if target == "mmface4d" or target.startswith("mmface4d."):
                found.append(Import(module, target, path, node.lineno))
    return found


def package_imports(package: Path = PACKAGE) -> list[Import]:
    """All imports of ``mmface4d`` modules made by the package's own modules."""
    files = sorted(package.rglob("*.py"))
    known = {module_name(f, package) for f in files}
    root = package.parent.parent  # paths in reports start at src/
    found: list[Import] = []
    for file in files:
        shown = str(file.relative_to(root))
        found += imports_in_source(
            file.read_text(encoding="utf-8"),
            module_name(file, package),
            file.name == "__init__.py",
            shown,
            known,
        )
    return found


def _excepted(imp: Import) -> bool:
    return (imp.source, imp.target) in EXCEPTIONS


def upward_imports(imports: list[Import]) -> list[str]:
    """Imports of a higher layer than the importer's, each with the two layers named."""
    bad = []
    for imp in imports:
        mine, theirs = layer_of(unit_of(imp.source)), layer_of(unit_of(imp.target))
        if mine is not None and theirs is not None and theirs > mine and not _excepted(imp):
            bad.append(
                f"{imp}: layer {LAYERS[mine][0]!r} may not import the higher layer "
                f"{LAYERS[theirs][0]!r}"
            )
    return bad


def sibling_imports(imports: list[Import]) -> list[str]:
    """Imports between different units of a sibling layer (the top stages)."""
    bad = []
    for imp in imports:
        mine, theirs = unit_of(imp.source), unit_of(imp.target)
        layer = layer_of(mine)
        if (
            mine != theirs
            and layer is not None
            and layer == layer_of(theirs)
            and LAYERS[layer][0] in SIBLING_LAYERS
            and not _excepted(imp)
        ):
            bad.append(
                f"{imp}: {mine!r} and {theirs!r} are sibling stages; move what both "
                "need to a lower layer"
            )
    return bad


def unit_cycles(imports: list[Import]) -> list[str]:
    """Groups of two or more units that reach each other through imports (excepted ones too),
    each with the imports that close the loop."""
    edges: dict[str, dict[str, Import]] = {}
    for imp in imports:
        a, b = unit_of(imp.source), unit_of(imp.target)
        if a != b:
            edges.setdefault(a, {}).setdefault(b, imp)
            edges.setdefault(b, {})

    def reachable(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in edges[todo.pop()]:
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    reach = {unit: reachable(unit) for unit in edges}
    groups = {
        frozenset(u for u in reach if u in reach[unit] and unit in reach[u]) | {unit}
        for unit in edges
        if unit in reach[unit]
    }
    report = []
    for group in sorted(groups, key=sorted):
        inside = [str(edges[a][b]) for a in sorted(group) for b in sorted(edges[a]) if b in group]
        report.append(f"cycle between {sorted(group)}: " + "; ".join(inside))
    return report


# ---------------------------------------------------------------- the checker itself


def _imports_of(source: str, module: str = "mmface4d.render.shade") -> list[Import]:
    known = {"mmface4d", "mmface4d.facemodel", "mmface4d.render", "mmface4d.render.camera"}
    return imports_in_source(source, module, False, "x.py", known)


def test_the_checker_sees_function_level_relative_and_package_imports():
    source = (
        "import numpy\n"
        "from mmface4d import __version__, facemodel\n"
        "from . import camera\n"
        "def f():\n"
        "    from mmface4d.audio.io import load_audio\n"
        "    import mmface4d.data.nut\n"
    )
    targets = [(imp.target, imp.line) for imp in _imports_of(source)]
    assert targets == [
        ("mmface4d", 2),
        ("mmface4d.facemodel", 2),
        ("mmface4d.render.camera", 3),
        ("mmface4d.audio.io", 5),
        ("mmface4d.data.nut", 6),
    ]


def test_the_checker_reports_upward_sibling_and_cyclic_imports():
    render_up = _imports_of("def f():\n    from mmface4d.audio.io import load_audio\n")
    facemodel_up = Import("mmface4d.facemodel.api", "mmface4d.render", "api.py", 7)
    sideways = Import("mmface4d.reconstruct.jobs", "mmface4d.synth.studio", "jobs.py", 9)
    down = Import("mmface4d.render.shade", "mmface4d.facemodel.lighting", "shade.py", 3)
    assert upward_imports(render_up + [down]) == [
        "x.py:2 mmface4d.render.shade imports mmface4d.audio.io: layer 'render' may not import "
        "the higher layer 'audio'"
    ]
    (sideways_report,) = sibling_imports([sideways, down])
    assert (
        sideways_report.startswith("jobs.py:9 ") and "'reconstruct' and 'synth'" in sideways_report
    )
    (cycle,) = unit_cycles([facemodel_up, down])
    assert "['facemodel', 'render']" in cycle and "api.py:7" in cycle and "shade.py:3" in cycle
    assert unit_cycles([down]) == []


# ---------------------------------------------------------------- the package


def test_every_subpackage_and_top_level_module_has_a_declared_layer():
    units = {unit_of(module_name(f)) for f in PACKAGE.rglob("*.py")}
    undeclared = sorted(u for u in units if layer_of(u) is None)
    assert not undeclared, f"add these to LAYERS and to docs/ARCHITECTURE.md: {undeclared}"


def test_no_module_imports_a_higher_layer():
    bad = upward_imports(package_imports())
    assert not bad, "upward imports:\n" + "\n".join(bad)


def test_the_top_stages_do_not_import_each_other():
    bad = sibling_imports(package_imports())
    assert not bad, "imports between sibling stages:\n" + "\n".join(bad)


def test_no_two_subpackages_import_each_other_through_any_chain():
    cycles = unit_cycles(package_imports())
    assert not cycles, "\n".join(cycles)


def test_every_declared_exception_is_still_an_import():
    present = {(imp.source, imp.target) for imp in package_imports()}
    stale = sorted(set(EXCEPTIONS) - present)
    assert not stale, f"these imports are gone; remove them from EXCEPTIONS: {stale}"


def test_the_documented_layer_order_is_the_one_checked():
    text = ARCHITECTURE_DOC.read_text(encoding="utf-8")
    order = " -> ".join(
        " / ".join(units) if name in SIBLING_LAYERS else name for name, units in LAYERS
    )
    assert order in re.sub(r"\s+", " ", text), f"docs/ARCHITECTURE.md should state: {order}"
