"""Where replay data comes from.

Resolution order of :func:`open_store`:

1. an explicit ``replay_dir`` argument;
2. the environment variable ``AUTOTTS_REPLAY_DIR``;
3. the user cache store, ``<cache>/store`` (filled by ``autotts data download``), where
   ``<cache>`` is ``$AUTOTTS_CACHE_DIR``, else ``$XDG_CACHE_HOME/autotts-gym``, else
   ``~/.cache/autotts-gym``; used when it holds at least one replay set;
4. the bundled synthetic default, ``autotts_gym.replay_data/synthetic`` (made by
   :mod:`autotts_gym.synthetic`, labelled synthetic).

A directory from (1) or (2) may be an HDF5 store (``<model>/<benchmark>.h5``) or a folder of
AutoTTS JSON (``<model>/<benchmark>.json``, or one ``.json`` file). JSON is imported once
into ``<cache>/imported/<key>`` keyed by the source folder's absolute path; importing it
again is a no-op (sources are compared by sha256).
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

from .store import STORE_SUFFIX, ReplayStore, StoreError, read_attrs

ENV_REPLAY_DIR = "AUTOTTS_REPLAY_DIR"
ENV_CACHE_DIR = "AUTOTTS_CACHE_DIR"


def user_cache_dir() -> Path:
    """The user cache root: ``$AUTOTTS_CACHE_DIR`` > ``$XDG_CACHE_HOME/autotts-gym`` >
    ``~/.cache/autotts-gym``."""
    if os.environ.get(ENV_CACHE_DIR):
        return Path(os.environ[ENV_CACHE_DIR]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "autotts-gym"


def user_store_dir(cache: Path | None = None) -> Path:
    """The user cache store (what ``autotts data download`` fills)."""
    return Path(cache or user_cache_dir()) / "store"


def bundled_store_dir() -> Path:
    """The bundled synthetic store shipped in ``autotts_gym.replay_data``."""
    root = resources.files("autotts_gym.replay_data").joinpath("synthetic")
    return Path(str(root))


def has_sets(root: Path) -> bool:
    """Whether ``root`` holds at least one ``<model>/<benchmark>.h5`` replay set."""
    return root.is_dir() and any(root.glob(f"*/*{STORE_SUFFIX}"))


def _json_sources(root: Path) -> bool:
    return (root.is_file() and root.suffix == ".json") or (
        root.is_dir() and any(root.glob("*/*.json"))
    )


def _from_dir(d: Path, origin: str) -> ReplayStore:
    d = Path(d).expanduser()
    if not d.exists():
        raise StoreError(f"{d} (from {origin}): no such file or directory")
    if has_sets(d):
        return _tag(ReplayStore(d), origin, d)
    if _json_sources(d):
        from .importer import import_sources

        src = d.resolve()
        key = hashlib.sha256(str(src).encode()).hexdigest()[:16]
        out = user_cache_dir() / "imported" / key
        import_sources(src, out)
        return _tag(ReplayStore(out), origin, src)
    raise StoreError(
        f"{d} (from {origin}): neither an HDF5 store ('<model>/<benchmark>{STORE_SUFFIX}') "
        "nor AutoTTS JSON ('<model>/<benchmark>.json')"
    )


def _tag(store: ReplayStore, origin: str, source: Path) -> ReplayStore:
    store.origin = origin  # type: ignore[attr-defined]
    store.source = source  # type: ignore[attr-defined]
    return store


def open_store(replay_dir: str | Path | None = None) -> ReplayStore:
    """The replay store to use: ``replay_dir`` > ``$AUTOTTS_REPLAY_DIR`` > user cache >
    bundled synthetic default (see the module doc). The store gets ``origin`` and
    ``source`` attributes saying where it came from (see :func:`describe_source`)."""
    if replay_dir is not None and str(replay_dir) != "":
        return _from_dir(Path(replay_dir), "argument")
    env = os.environ.get(ENV_REPLAY_DIR)
    if env:
        return _from_dir(Path(env), f"${ENV_REPLAY_DIR}")
    cache = user_store_dir()
    if has_sets(cache):
        return _tag(ReplayStore(cache), "user cache", cache)
    bundled = bundled_store_dir()
    if not has_sets(bundled):
        raise StoreError(
            f"no replay data: pass a directory, set ${ENV_REPLAY_DIR}, run `autotts data "
            f"download`, or regenerate the bundled default ({bundled} is empty)"
        )
    return _tag(ReplayStore(bundled), "bundled default", bundled)


def is_synthetic(store: ReplayStore) -> bool:
    """True if any replay set of the store was made by the synthetic generator."""
    keys = store.keys()
    return any(bool(read_attrs(store.path(m, b)).get("synthetic", False)) for m, b in keys)


def describe_source(store: ReplayStore) -> str:
    """One line: real or synthetic, and where the data came from."""
    kind = "synthetic" if is_synthetic(store) else "real"
    origin = getattr(store, "origin", "argument")
    source = getattr(store, "source", store.root)
    text = f"{kind} replay data ({len(store.keys())} sets) from {origin}: {source}"
    if Path(source) != store.root:
        text += f" (store {store.root})"
    if kind == "synthetic":
        text += " [SYNTHETIC: made by autotts_gym.synthetic, not by a model]"
    return text
