"""How controllers are found: the one loader.

What a controller is (``make_controller(beta) -> Controller``, ``solve(session)``, the
optional ``solve_batch`` fast path) is typed once in :mod:`autotts_gym.contracts`; this
module resolves a name, module, file or callable into a :class:`ControllerSpec` holding a
typed :data:`~autotts_gym.contracts.ControllerFactory`.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import cast

from .contracts import Controller, ControllerFactory
from .errors import AutoTTSError


class ControllerError(AutoTTSError, ValueError):
    """A controller could not be loaded or broke the contract."""


@dataclass(frozen=True)
class ControllerSpec:
    """A loadable controller: a display name, where it came from, and its factory."""

    name: str
    source: str
    make_controller: ControllerFactory


def _registry() -> tuple[dict[str, str], dict[str, str]]:
    from .baselines import DISPLAY_NAMES, REGISTRY

    return REGISTRY, DISPLAY_NAMES


def user_controllers_dir() -> Path:
    """Where ``autotts discover accept`` puts controllers: ``$AUTOTTS_CONTROLLERS_DIR`` >
    ``$XDG_DATA_HOME/autotts-gym/controllers`` > ``~/.local/share/autotts-gym/controllers``.
    A file ``NAME.py`` there is addressable as the controller ``NAME``."""
    env = os.environ.get("AUTOTTS_CONTROLLERS_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "autotts-gym" / "controllers"


def _module_from_file(path: Path) -> ModuleType:
    name = f"autotts_user_controller_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ControllerError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        del sys.modules[name]
        raise ControllerError(f"{path}: importing the controller failed: "
                              f"{type(e).__name__}: {e}") from e
    return module


def load_controller(spec: str | Path | ModuleType | ControllerFactory | ControllerSpec,
                    name: str | None = None) -> ControllerSpec:
    """Resolve a registry name (``cmc``), module path (``pkg.mod``), file (``x.py``),
    module object or ``make_controller`` callable into a :class:`ControllerSpec`."""
    if isinstance(spec, ControllerSpec):
        return spec
    registry, display = _registry()
    if isinstance(spec, ModuleType):
        module, source = spec, spec.__name__
    elif callable(spec) and not isinstance(spec, (str, Path)):
        label = name or str(getattr(spec, "__name__", "controller"))
        return ControllerSpec(label, f"<callable {spec!r}>", spec)
    else:
        source = str(spec)
        if source in registry:
            module = importlib.import_module(registry[source])
            name = name or display[source]
        elif (source.isidentifier() and "." not in source
              and (user_controllers_dir() / f"{source}.py").is_file()):
            path = user_controllers_dir() / f"{source}.py"
            module = _module_from_file(path)
            name = name or source
        elif source.endswith(".py") or Path(source).is_file():
            path = Path(source)
            if not path.is_file():
                raise ControllerError(f"{path}: controller file not found")
            module = _module_from_file(path)
            name = name or path.stem
        else:
            try:
                module = importlib.import_module(source)
            except ImportError as e:
                raise ControllerError(
                    f"{source!r} is not a controller file, a module, or one of the "
                    f"built-in names ({', '.join(registry)}): {e}"
                ) from None
    make = getattr(module, "make_controller", None)
    if not callable(make):
        raise ControllerError(f"{source}: defines no callable make_controller(beta)")
    return ControllerSpec(name or source.rsplit(".", 1)[-1], source,
                          cast(ControllerFactory, make))


def instantiate(spec: ControllerSpec, beta: float) -> Controller:
    """Call ``make_controller(beta)`` and check the result is a
    :class:`~autotts_gym.contracts.Controller` (has ``solve``)."""
    try:
        ctl = spec.make_controller(beta)
    except Exception as e:
        raise ControllerError(f"controller {spec.name}: make_controller({beta}) raised "
                              f"{type(e).__name__}: {e}") from e
    if not callable(getattr(ctl, "solve", None)):
        raise ControllerError(f"controller {spec.name}: make_controller({beta}) returned "
                              f"{type(ctl).__name__}, which has no solve(session) method")
    return ctl
