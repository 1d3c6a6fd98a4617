"""Architecture checks over the source tree (docs/architecture.md: layers, rooms, conventions)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "smpcloud"

# Rank of each layer: a module may import only from layers of lower or equal rank
# (docs/architecture.md draws the same picture).
LAYERS = {
    "errors": 0,
    "ports": 0,
    "datasets": 0,
    "crypto": 1,
    "keyfiles": 2,
    "mpc": 2,
    "parallel": 2,
    "protocol": 3,
    "service": 4,
    "client": 4,
    "integrations": 5,
    "evaluation": 6,
    "apps": 7,
    "cli": 8,
}
# Same-rank layers that must still never import each other: the service and its SDK meet only
# in the wire contract (smpcloud.protocol).
APART = {frozenset({"service", "client"})}
FORBIDDEN_IN_CRYPTO = {
    "socket",
    "asyncio",
    "sqlite3",
    "http",
    "httpx",
    "pathlib",
    "shutil",
    "subprocess",
    "ssl",
    "fastapi",
    "sqlalchemy",
    "tempfile",
}


def layer_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "package"


def modules() -> list[tuple[str, ast.Module]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        name = ".".join(rel.parts).removesuffix(".__init__")
        out.append((name, ast.parse(path.read_text(), filename=str(path))))
    return out


def imported(tree: ast.Module) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize(("name", "tree"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_imports_point_downwards(name: str, tree: ast.Module) -> None:
    own = layer_of(name)
    if own not in LAYERS:
        return
    for target in imported(tree):
        if not target.startswith("smpcloud.") or target.count(".") < 1:
            continue
        other = layer_of(target)
        if other in LAYERS:
            assert LAYERS[other] <= LAYERS[own], f"{name} imports {target} from a higher layer"


@pytest.mark.parametrize(("name", "tree"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_service_and_client_meet_only_in_the_protocol(name: str, tree: ast.Module) -> None:
    own = layer_of(name)
    for target in imported(tree):
        if target.startswith("smpcloud."):
            other = layer_of(target)
            assert frozenset({own, other}) not in APART or own == other, (
                f"{name} imports {target}: service and client share only smpcloud.protocol"
            )


@pytest.mark.parametrize(("name", "tree"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_private_names_across_modules(name: str, tree: ast.Module) -> None:
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom) or node.level != 0 or not node.module:
            continue
        if not node.module.startswith("smpcloud"):
            continue
        private = [
            a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
        ]
        assert not private, f"{name} imports private names {private} from {node.module}"
        parts = node.module.split(".")
        for i, part in enumerate(parts):
            if part.startswith("_") and not part.startswith("__"):
                package = ".".join(parts[:i])
                assert name == package or name.startswith(package + "."), (
                    f"{name} imports the private module {node.module} from outside {package}"
                )


def test_every_layer_is_known() -> None:
    layers = {layer_of(name) for name, _ in modules()}
    unknown = layers - set(LAYERS) - {"package", "__main__"}
    assert not unknown, f"add these to LAYERS (and docs/architecture.md): {sorted(unknown)}"


LONG_MODULE_LINES = 600


@pytest.mark.parametrize(("name", "tree"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_long_modules_say_why(name: str, tree: ast.Module) -> None:
    """A module past ~600 lines says in its docstring why it must be one file."""
    path = SRC.parent.joinpath(*name.split(".")).with_suffix(".py")
    if not path.exists():
        path = SRC.parent.joinpath(*name.split("."), "__init__.py")
    lines = len(path.read_text().splitlines())
    if lines <= LONG_MODULE_LINES:
        return
    doc = ast.get_docstring(tree) or ""
    assert "one file" in doc.lower(), (
        f"{name} has {lines} lines: split it, or say in its docstring why it must be one file"
    )


@pytest.mark.parametrize(("name", "tree"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_crypto_is_pure(name: str, tree: ast.Module) -> None:
    if layer_of(name) != "crypto":
        return
    roots = {t.split(".")[0] for t in imported(tree)}
    assert not roots & FORBIDDEN_IN_CRYPTO, f"{name} imports {roots & FORBIDDEN_IN_CRYPTO}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
            assert node.func.id != "open", f"{name} opens a file"


@pytest.mark.parametrize(("name", "tree"), modules(), ids=lambda v: v if isinstance(v, str) else "")
def test_no_assert_and_no_weak_randomness(name: str, tree: ast.Module) -> None:
    for node in ast.walk(tree):
        assert not isinstance(node, ast.Assert), f"{name}:{node.lineno} uses assert as a check"
        if isinstance(node, ast.Attribute) and node.attr == "random":
            base = node.value
            assert not (isinstance(base, ast.Name) and base.id in {"np", "numpy"}), (
                f"{name}:{node.lineno} uses numpy.random"
            )
    assert "random" not in {t.split(".")[0] for t in imported(tree)}, f"{name} imports random"
