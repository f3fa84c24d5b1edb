"""The demo is not the product: no product module imports ``jointseg.simulate``.

Every module of the ``jointseg`` package except the simulator itself and the CLI is
read with :mod:`ast` (nothing is imported), and each ``import`` / ``from ... import``,
at module level or inside a function, is checked. The CLI (like ``rules/*.smk``) wires
the demo's commands (``jointseg simulate``, ``products simulate``, the demo servers) and
may use the simulator; facts both need (e.g. :mod:`jointseg.landcover`) live below both.
"""

from __future__ import annotations

import ast
from pathlib import Path

#: The package's source in this checkout (read, never imported).
PACKAGE = Path(__file__).resolve().parents[1] / "jointseg"
#: Sub-packages that may import the simulator: itself and the command-line wiring.
DEMO_SIDE = ("simulate", "cli")


def product_modules() -> list[Path]:
    """The .py files of the package outside :data:`DEMO_SIDE`."""
    return sorted(p for p in PACKAGE.rglob("*.py")
                  if p.relative_to(PACKAGE).parts[0] not in DEMO_SIDE)


def imported_names(source: str, package: str) -> list[tuple[int, str]]:
    """(line, dotted module name) of every import in ``source``, a module of ``package``;
    relative imports resolved, ``from a import b`` as ``a.b`` (b may be a sub-module)."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join([*parts[: len(parts) - node.level + 1], *([base] if base else [])])
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return sorted(out)


def simulate_imports(source: str, package: str) -> list[tuple[int, str]]:
    """The imports of ``jointseg.simulate`` or any of its modules in ``source``."""
    return [(line, name) for line, name in imported_names(source, package)
            if name == "jointseg.simulate" or name.startswith("jointseg.simulate.")]


def test_no_product_module_imports_the_simulator() -> None:
    modules = product_modules()
    assert len(modules) > 50 and PACKAGE / "assess" / "perclass.py" in modules
    bad = [f"{p.relative_to(PACKAGE.parent)}:{line}: {name}" for p in modules
           for line, name in simulate_imports(
               p.read_text(), ".".join(("jointseg", *p.relative_to(PACKAGE).parent.parts)))]
    assert not bad, "product modules import jointseg.simulate:\n" + "\n".join(bad)


def test_the_walk_sees_every_kind_of_import() -> None:
    """The checker itself: absolute, from-, lazy (in a function) and relative imports."""
    src = ("import jointseg.simulate.region\n"
           "from jointseg.simulate import materials\n"
           "from jointseg import simulate\n"
           "def f():\n    from jointseg.simulate.materials import CLASSES\n"
           "from ..simulate import stac\n"
           "from . import compare\n"
           "from jointseg.assess import rasters\n"
           "import jointseg.simulated_but_not_the_simulator\n")
    hits = simulate_imports(src, "jointseg.assess")
    assert [line for line, _ in hits] == [1, 2, 3, 5, 6]
    assert hits[-1] == (6, "jointseg.simulate.stac")
