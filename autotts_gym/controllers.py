"""How controllers are found: the one loader.

What a controller is (``make_controller(beta) -> Controller``, ``solve(session)``, the
optional ``solve_batch`` fast path) is typed once in :mod:`autotts_gym.contracts`; this
module resolves a name, module, file or callable into a :class:`ControllerSpec` holding a
typed :data:`~autotts_gym.contracts.ControllerFactory`.

A file (or module) may instead hold classes written for the AutoTTS release
(``Cls(config={...}).solve(question)``, see :mod:`autotts_gym.release`): ``FILE.py:CLASS``
picks one, and a file without ``make_controller`` whose only candidate is one such class
runs that class.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any, cast

from .contracts import Controller, ControllerFactory
from .errors import AutoTTSError
from .release import (
    ReleaseClassError,
    ReleaseController,
    check_release_class,
    parse_controller_config,
    release_candidates,
)


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


def split_class(spec: str) -> tuple[str, str | None]:
    """``"x.py:Cls"`` -> ``("x.py", "Cls")``; a spec without ``:CLASS`` -> ``(spec, None)``."""
    head, sep, tail = spec.rpartition(":")
    if sep and head and tail.isidentifier():
        return head, tail
    return spec, None


def load_controller(spec: str | Path | ModuleType | ControllerFactory | ControllerSpec,
                    name: str | None = None,
                    config: str | Mapping[str, Any] | None = None,
                    cls: str | None = None) -> ControllerSpec:
    """Resolve a registry name (``cmc``), module path (``pkg.mod``), file (``x.py``),
    module object or ``make_controller`` callable into a :class:`ControllerSpec`.

    ``SPEC:CLASS`` (a file, module or user controller name) runs the release-style class
    ``CLASS``; so does a module without ``make_controller`` whose only release-style class
    it is. ``config`` (a dict or ``KEY=VALUE,...``) goes to a release-style class as
    ``config={"beta": beta, **config}``; for other controllers it is an error. ``cls``
    names the class apart from ``spec`` (e.g. with a module object).
    """
    cfg = parse_controller_config(config)
    out, release = _load(spec, name, cfg, cls)
    if cfg and not release:
        raise ControllerError(f"controller {out.name}: --controller-config applies only to "
                              "release-style classes (FILE.py:CLASS); this one is built by "
                              "make_controller(beta)")
    return out


def load_controllers(specs: Sequence[str], config: str | Mapping[str, Any] | None = None
                     ) -> list[ControllerSpec]:
    """Several controllers (``compare --controllers``); ``config`` goes to the
    release-style ones, and at least one must be release-style when it is given."""
    cfg = parse_controller_config(config)
    loaded = [_load(s, None, cfg) for s in specs]
    if cfg and not any(release for _, release in loaded):
        raise ControllerError("--controller-config was given but none of the controllers "
                              f"({', '.join(map(str, specs))}) is a release-style class")
    return [spec for spec, _ in loaded]


def _load(spec, name: str | None, cfg: dict[str, Any], cls: str | None = None
          ) -> tuple[ControllerSpec, bool]:
    """(the controller, whether it is a release-style class)."""
    if isinstance(spec, ControllerSpec):
        return spec, False
    cls_name = cls
    if isinstance(spec, str):
        spec, named = split_class(spec)
        if named is not None and cls is not None and named != cls:
            raise ControllerError(f"{spec}: class {named} named twice, and as {cls}")
        cls_name = named or cls
    module, source, default = _resolve(spec, name)
    if isinstance(module, ControllerSpec):
        return module, False
    make = getattr(module, "make_controller", None)
    if cls_name is None and not callable(make):
        found, rejected = release_candidates(module)
        if len(found) == 1:
            cls_name = found[0]
        elif found:
            raise ControllerError(
                f"{source}: defines no make_controller(beta) and several release-style "
                f"classes ({', '.join(found)}); pick one with {source}:CLASS")
        else:
            why = "".join(f"; {k} {v}" for k, v in rejected.items())
            raise ControllerError(
                f"{source}: defines no callable make_controller(beta) and no release-style "
                f"class (a class with solve(question), built as Cls(config=...)){why}")
    if cls_name is not None:
        try:
            klass = check_release_class(module, cls_name, source)
        except ReleaseClassError as e:
            raise ControllerError(str(e)) from None
        return ControllerSpec(name or cls_name, f"{source}:{cls_name}",
                              partial(ReleaseController, klass, config=cfg)), True
    return ControllerSpec(default or source.rsplit(".", 1)[-1], source,
                          cast(ControllerFactory, make)), False


def _resolve(spec, name: str | None):
    """(module or a finished ControllerSpec, source text, display name)."""
    registry, display = _registry()
    if isinstance(spec, ModuleType):
        module, source = spec, spec.__name__
    elif callable(spec) and not isinstance(spec, (str, Path)):
        label = name or str(getattr(spec, "__name__", "controller"))
        return ControllerSpec(label, f"<callable {spec!r}>", spec), "", name
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
    return module, source, name


def instantiate(spec: ControllerSpec, beta: float) -> Controller:
    """Call ``make_controller(beta)`` and check the result is a
    :class:`~autotts_gym.contracts.Controller` (has ``solve``)."""
    try:
        ctl = spec.make_controller(beta)
    except AutoTTSError as e:
        raise ControllerError(f"controller {spec.name}: {e}") from e
    except Exception as e:
        raise ControllerError(f"controller {spec.name}: make_controller({beta}) raised "
                              f"{type(e).__name__}: {e}") from e
    if not callable(getattr(ctl, "solve", None)):
        raise ControllerError(f"controller {spec.name}: make_controller({beta}) returned "
                              f"{type(ctl).__name__}, which has no solve(session) method")
    return ctl
