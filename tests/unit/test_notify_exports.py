"""The notifier's modules export exactly their public names (``__all__`` does not drift)."""

from __future__ import annotations

import inspect
from types import ModuleType

import pytest

from hub.notify import breaker, channels, errors, service, smtp_sink, store_log, templates


@pytest.mark.parametrize(
    "module", [breaker, channels, errors, service, smtp_sink, store_log, templates]
)
def test_all_lists_every_public_class_and_function(module: ModuleType) -> None:
    """Every public class and function defined in the module is in ``__all__``, and every name
    in ``__all__`` exists."""
    defined = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and (inspect.isclass(value) or inspect.isfunction(value))
        and value.__module__ == module.__name__
    }
    exported = set(module.__all__)
    assert defined - exported == set()
    assert {name for name in exported if not hasattr(module, name)} == set()
