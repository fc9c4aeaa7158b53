"""Every exception Torua defines hangs from one root, so ``except ToruaError``
catches whatever Torua raises on purpose (private control-flow signals aside)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import torua
from torua.errors import ToruaError


def defined_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(torua.__path__, "torua."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, obj in vars(module).items():
            if (
                inspect.isclass(obj)
                and issubclass(obj, BaseException)
                and obj.__module__ == info.name
                and not name.startswith("_")
            ):
                found.append(obj)
    return found


def test_every_public_exception_has_the_one_root() -> None:
    found = defined_exceptions()
    assert len(found) > 20  # the walk reached the subpackages
    outside = sorted(
        f"{e.__module__}.{e.__qualname__}" for e in found if not issubclass(e, ToruaError)
    )
    assert outside == []
