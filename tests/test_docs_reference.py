"""The API reference (docs/reference/*.md) covers every public class and function.

Public modules: ``lit_infobottleneck`` and every module found by ``pkgutil.walk_packages``
whose dotted name has no component starting with ``_``. Public objects of a module: the
classes and functions bound to a name without a leading ``_`` that are defined there
(``obj.__module__`` is the module) or listed in its ``__all__``.

The rule for coverage, kept as simple as mkdocstrings' own: a directive ``::: dotted.path``
covers the object at that path; a directive naming a module also covers each public object
of that module, unless the directive's ``options`` (or the handler's global options in
mkdocs.yml) exclude it: a ``members`` list that does not name it, ``members: false`` (or an
empty list), or ``filters`` that reject its name (regexes, ``!`` excludes; the semantics of
mkdocstrings-python). An object counts as covered if a directive covers it under any name it
is reachable by: the module that exports it, or its defining module (so the names a package
re-exports through ``__all__`` are covered by the directive of the module defining them).

Also: every page in mkdocs.yml's ``nav`` exists, every reference page is in the nav, and
every directive names an object that exists. No mkdocs needed: mkdocs.yml is read with
``yaml.safe_load`` (it must not use ``!!python`` tags).
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

import lit_infobottleneck

ROOT = Path(__file__).resolve().parents[1]
DIRECTIVE = re.compile(r"^:::\s+(\S+)\s*$")


def public_modules() -> list[str]:
    names = [lit_infobottleneck.__name__]
    for info in pkgutil.walk_packages(
        lit_infobottleneck.__path__, prefix=f"{lit_infobottleneck.__name__}."
    ):
        if not any(part.startswith("_") for part in info.name.split(".")):
            names.append(info.name)
    return names


def public_objects(module_name: str) -> dict[str, Any]:
    """``{name: object}`` of the public classes and functions of a module."""
    module = importlib.import_module(module_name)
    exported = set(getattr(module, "__all__", ()))
    found = {}
    for name, obj in vars(module).items():
        if name.startswith("_") or not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if obj.__module__ == module_name or name in exported:
            found[name] = obj
    return found


def load_mkdocs_config() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "mkdocs.yml").read_text())


def global_handler_options(config: dict[str, Any]) -> dict[str, Any]:
    for plugin in config.get("plugins", []):
        if isinstance(plugin, dict) and "mkdocstrings" in plugin:
            handlers = (plugin["mkdocstrings"] or {}).get("handlers", {})
            return (handlers.get("python") or {}).get("options", {}) or {}
    return {}


def directives(page: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(dotted path, options)`` of every ``:::`` directive of a Markdown page; the options
    are the indented YAML block right below the directive line."""
    lines = page.read_text().splitlines()
    found = []
    for i, line in enumerate(lines):
        match = DIRECTIVE.match(line)
        if not match:
            continue
        block = []
        for following in lines[i + 1 :]:
            if not following.startswith("    "):
                break
            block.append(following)
        parsed = yaml.safe_load(textwrap.dedent("\n".join(block))) if block else None
        found.append((match.group(1), (parsed or {}).get("options") or {}))
    return found


def keep_by_filters(name: str, filters: list[str]) -> bool:
    """mkdocstrings-python's filter rule: the last matching regex decides (``!``: exclude);
    with no match, an object is kept unless every filter is an inclusion."""
    keep = None
    kinds = set()
    for spec in filters:
        exclude = spec.startswith("!")
        kinds.add(exclude)
        if re.search(spec[1:] if exclude else spec, name):
            keep = not exclude
    return kinds != {False} if keep is None else keep


def covered_paths(path: str, options: dict[str, Any], defaults: dict[str, Any]) -> set[str]:
    """Dotted paths a directive covers: its target, and its module's members as filtered."""
    paths = {path}
    try:
        importlib.import_module(path)
    except ImportError:
        return paths  # not a module: the object itself
    members = options.get("members", defaults.get("members"))
    filters = options.get("filters", defaults.get("filters", ["!^_[^_]"]))
    for name in public_objects(path):
        if members is False or members == []:
            continue
        if isinstance(members, list) and name not in members:
            continue
        if isinstance(filters, list) and not keep_by_filters(name, filters):
            continue
        paths.add(f"{path}.{name}")
    return paths


def reference_pages() -> list[Path]:
    return sorted((ROOT / "docs" / "reference").glob("*.md"))


def resolve(path: str) -> Any:
    """The object a dotted path names (a module, or an attribute of the longest module)."""
    parts = path.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj: Any = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            obj = getattr(obj, attribute)
        return obj
    raise ImportError(path)


def test_every_public_object_is_in_the_reference() -> None:
    defaults = global_handler_options(load_mkdocs_config())
    covered: set[str] = set()
    for page in reference_pages():
        for path, options in directives(page):
            covered |= covered_paths(path, options, defaults)
    missing = []
    for module_name in public_modules():
        for name, obj in public_objects(module_name).items():
            names = {f"{module_name}.{name}", f"{obj.__module__}.{obj.__qualname__}"}
            if not names & covered:
                missing.append(f"{module_name}.{name}")
    assert not missing, f"not in docs/reference/*.md: {sorted(missing)}"


def test_reference_directives_name_existing_objects() -> None:
    pages = reference_pages()
    assert pages, "docs/reference/ has no pages"
    for page in pages:
        for path, _ in directives(page):
            try:
                resolve(path)
            except (ImportError, AttributeError) as err:
                pytest.fail(f"{page.name}: `::: {path}` names nothing ({err})")


def nav_pages(nav: Any) -> list[str]:
    if isinstance(nav, str):
        return [nav] if nav.endswith(".md") else []
    if isinstance(nav, list):
        return [page for item in nav for page in nav_pages(item)]
    if isinstance(nav, dict):
        return [page for value in nav.values() for page in nav_pages(value)]
    return []


def test_nav_pages_exist() -> None:
    config = load_mkdocs_config()
    docs = ROOT / config.get("docs_dir", "docs")
    pages = nav_pages(config["nav"])
    assert pages, "mkdocs.yml has no nav pages"
    missing = [page for page in pages if not (docs / page).is_file()]
    assert not missing, f"nav pages missing from {docs}: {missing}"
    unlisted = [
        page.relative_to(docs).as_posix()
        for page in reference_pages()
        if page.relative_to(docs).as_posix() not in pages
    ]
    assert not unlisted, f"reference pages not in mkdocs.yml's nav: {unlisted}"


def test_rule_of_coverage() -> None:
    """The rule itself: filters and ``members`` exclude, a module covers its members."""
    module = "lit_infobottleneck.geometry"
    everything = covered_paths(module, {}, {"filters": ["!^_"]})
    assert f"{module}.layer_geometry" in everything
    assert covered_paths(module, {"members": False}, {}) == {module}
    only = covered_paths(module, {"members": ["layer_geometry"]}, {})
    assert only == {module, f"{module}.layer_geometry"}
    filtered = covered_paths(module, {"filters": ["!^_", "!^layer_geometry$"]}, {})
    assert f"{module}.layer_geometry" not in filtered
    assert f"{module}.within_class_ratio" in filtered
