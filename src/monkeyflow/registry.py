"""Name -> implementation registries, so a new dataset, backend or verifier is one module plus one
line, never a new `if` chain in shared code.

An entry is registered one of three ways:
- eagerly, with the `@REGISTRY.register("name")` decorator in the module that defines it;
- lazily, as a `"package.module:attribute"` string (`REGISTRY.add("name", "pkg.mod:Cls")`): the
  module is imported the first time the name is asked for, so listing names imports nothing;
- by a third-party package, through a Python entry point in the registry's group (for example
  `[project.entry-points."monkeyflow.verifiers"] myverifier = "mypkg.verify:MyVerifier"`),
  discovered the first time the registry is asked for a name it does not know, or for its names.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class UnknownNameError(KeyError):
    """Raised for a name no implementation registered; the message lists the known names."""

    def __str__(self) -> str:  # KeyError quotes its message; keep it readable
        return str(self.args[0])


class PluginError(ImportError):
    """A registered entry (built-in or third-party) that cannot be imported or is malformed."""


def load_reference(reference: str) -> object:
    """The object a `"package.module:attribute"` string names."""
    module_name, sep, attribute = reference.partition(":")
    if not sep or not module_name or not attribute:
        raise PluginError(f"{reference!r} is not a 'package.module:attribute' reference")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise PluginError(f"cannot import {module_name!r} (for {reference!r}): {exc}") from exc
    obj: object = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise PluginError(
                f"{module_name!r} has no attribute {attribute!r} (for {reference!r})"
            ) from None
    return obj


class Registry(Generic[T]):
    """A named collection of implementations of one kind (datasets, backends, verifiers).

    `group` is the entry-point group third-party packages register into; `check` is called on
    every loaded entry (e.g. to set its `name`) and may raise PluginError for a malformed one.
    """

    def __init__(
        self, kind: str, group: str | None = None, check: Callable[[str, T], T] | None = None
    ) -> None:
        self.kind = kind
        self.group = group
        self._check = check
        self._items: dict[str, T] = {}
        self._lazy: dict[str, str] = {}
        self._discovered = group is None

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: register `obj` under `name` (the module defining it must be imported)."""

        def decorate(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            self._items[name] = self._check(name, obj) if self._check else obj
            self._lazy.pop(name, None)
            return obj

        return decorate

    def add(self, name: str, reference: str) -> None:
        """Register `name` lazily as a 'package.module:attribute' reference."""
        if name in self._items or (name in self._lazy and self._lazy[name] != reference):
            raise ValueError(f"{self.kind} {name!r} registered twice")
        self._lazy[name] = reference

    def _discover(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            if ep.name not in self._items and ep.name not in self._lazy:
                self._lazy[ep.name] = ep.value

    def get(self, name: str) -> T:
        if name not in self._items and name not in self._lazy:
            self._discover()
        if name in self._items:
            return self._items[name]
        if name in self._lazy:
            reference = self._lazy[name]
            obj = load_reference(reference)
            if name not in self._items:  # importing the module may have registered it already
                self._items[name] = self._check(name, obj) if self._check else obj  # type: ignore[arg-type]
            self._lazy.pop(name, None)
            return self._items[name]
        known = ", ".join(self.names()) or "none"
        hint = (
            f" (third-party {self.kind}s register in the entry-point group {self.group!r})"
            if self.group
            else ""
        )
        raise UnknownNameError(f"unknown {self.kind} {name!r}; known: {known}{hint}")

    def names(self) -> list[str]:
        self._discover()
        return sorted({*self._items, *self._lazy})

    def __contains__(self, name: object) -> bool:
        if name not in self._items and name not in self._lazy:
            self._discover()
        return name in self._items or name in self._lazy
