"""Fetch the public AutoTTS replay release into the user cache and import it.

The release lives at github.com/zhengkid/AutoTTS, folder
``efficient_reasoning_controller/test_environment/``, as ``<model>/<benchmark>.json``.
Each file is downloaded to ``<cache>/downloads/<model>/<benchmark>.json`` through a
``.part`` file (an interrupted download resumes with an HTTP Range request), checked
against its published sha256, and then imported into ``<cache>/store``.
The release carries no license, so the package never ships it; users fetch it themselves.
"""

from __future__ import annotations

import http.client
import os
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

from .importer import ImportResult, import_sources, sha256_file
from .store import StoreError

DEFAULT_BASE_URL = (
    "https://raw.githubusercontent.com/zhengkid/AutoTTS/main/"
    "efficient_reasoning_controller/test_environment"
)

# sha256 of the released files (from the release as recorded in shared/replay/README.md).
RELEASE_SHA256: dict[str, str] = {
    "Qwen3-0.6B/aime24.json": "6b4297405b494c84afb05b337af315c617513eb2580ed327ca7040b760988a7d",
    "Qwen3-0.6B/aime25.json": "33f65695ecc78fb777f53bead2128ba1249772b3608c6a22bd4e674488d453e0",
    "Qwen3-0.6B/hmmt25.json": "7e7c574aaedcd05b36b801c11e3bdd7e2cfd3b7309a2376967cc1e8bc01ebebc",
    "Qwen3-1.7B/aime24.json": "5d6c9a63e26c7cf60181c53b67adc7017db146bf2ff1e3b9784673cb97313ad1",
    "Qwen3-1.7B/aime25.json": "77bfb8e8589d0c0da3ccb6d5852c37bf23273e047664a5086d492896a5ae2496",
    "Qwen3-1.7B/hmmt25.json": "87d158ecdc3551e375891d19917ce02f8fdcadd778afe99ad2ae179f872fb298",
    "Qwen3-4B/aime24.json": "d99ce8711c60605b7555a7fc6e66cc5ae0abe7ce6b36bf4e712802d26aa7ffdd",
    "Qwen3-4B/aime25.json": "977f56022b0cd225bd0233aff1f7b39740c45ec79693475ada8c766ee4097a3f",
    "Qwen3-4B/hmmt25.json": "4bc0b51765a0fc5a3d9a462b1ff317b70577d478c5cb5e06f20fe9d5b73b4b1c",
}
RELEASE_FILES: tuple[str, ...] = tuple(RELEASE_SHA256)

_CHUNK = 1 << 16


class DownloadError(StoreError):
    """A download failed: the message names the URL or the file."""


def fetch(url: str, dest: Path, sha256: str | None = None, timeout: float = 60.0,
          progress: Callable[[str, int], None] | None = None) -> Path:
    """Download ``url`` to ``dest`` via ``dest.part``, resuming a partial ``.part`` with a
    Range request, then check ``sha256`` and rename into place. Returns ``dest``.

    A ``dest`` that already exists with the right sum is kept without any request.
    """
    dest = Path(dest)
    if dest.is_file() and (sha256 is None or sha256_file(dest) == sha256):
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"User-Agent": "autotts-gym"})
    if have:
        req.add_header("Range", f"bytes={have}-")
    local = urllib.parse.urlsplit(url).scheme == "file"
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:  # the .part is already complete (or longer than the file)
            resp = None
        else:
            raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, ValueError) as e:
        why = getattr(e, "reason", e)
        if local:
            raise DownloadError(f"{url}: cannot read ({why})") from None
        raise DownloadError(f"{url}: cannot connect ({why})") from None
    if resp is not None:
        with resp:
            # a file:// answer has no status and ignores Range: it always starts at byte 0
            resumed = bool(have) and getattr(resp, "status", None) == 206
            expected = getattr(resp, "length", None)  # Content-Length (None: unknown)
            got = 0
            error = None
            with open(part, "ab" if resumed else "wb") as out:
                try:
                    for chunk in iter(lambda: resp.read(_CHUNK), b""):
                        out.write(chunk)
                        got += len(chunk)
                        if progress:
                            progress(url, got + (have if resumed else 0))
                except (OSError, http.client.HTTPException) as e:
                    error = e
                out.flush()
                os.fsync(out.fileno())
            if error is not None or (expected is not None and got < expected):
                # connection dropped: keep the .part so that the next call resumes
                raise DownloadError(
                    f"{url}: download interrupted after {got} of {expected or '?'} bytes"
                    f"{f' ({error})' if error else ''}; run again to resume"
                )
    if sha256 is not None:
        digest = sha256_file(part)
        if digest != sha256:
            part.unlink()
            raise DownloadError(
                f"{dest.name} ({url}): sha256 mismatch: expected {sha256}, got {digest}; "
                "the partial file was removed, run again to re-download"
            )
    os.replace(part, dest)
    return dest


def check_base_url(base_url: str) -> None:
    """:class:`DownloadError` unless ``base_url`` is an http(s) URL with a host or a
    ``file://`` URL of an existing folder (an offline mirror of the release)."""
    parts = urllib.parse.urlsplit(base_url)
    if parts.scheme in ("http", "https"):
        if not parts.netloc:
            raise DownloadError(f"--base-url {base_url!r}: no host in the URL")
        return
    if parts.scheme == "file":
        if parts.netloc not in ("", "localhost"):
            raise DownloadError(f"--base-url {base_url!r}: a file:// URL needs an absolute "
                                "path (file:///path/to/folder)")
        folder = Path(urllib.request.url2pathname(parts.path))
        if not folder.is_dir():
            raise DownloadError(f"--base-url {base_url!r}: {folder} is not a folder")
        return
    raise DownloadError(f"--base-url {base_url!r}: expected an http://, https:// or "
                        "file:// URL")


def download_release(
    dest_cache: Path | str | None = None,
    base_url: str = DEFAULT_BASE_URL,
    files: Iterable[str] = RELEASE_FILES,
    sha256: Mapping[str, str] | None = RELEASE_SHA256,
    timeout: float = 60.0,
    progress: Callable[[str, int], None] | None = None,
) -> list[ImportResult]:
    """Download the release files (``<model>/<benchmark>.json``) from ``base_url`` into
    ``<dest_cache>/downloads``, verify each sha256, and import them into
    ``<dest_cache>/store``. ``dest_cache`` defaults to the user cache directory."""
    from .data import user_cache_dir, user_store_dir

    check_base_url(base_url)
    cache = Path(dest_cache) if dest_cache is not None else user_cache_dir()
    downloads = cache / "downloads"
    for name in files:
        url = f"{base_url.rstrip('/')}/{name}"
        want = None if sha256 is None else sha256.get(name)
        if sha256 is not None and want is None:
            raise DownloadError(f"{name}: no sha256 known for this file")
        fetch(url, downloads / name, want, timeout=timeout, progress=progress)
    return import_sources(downloads, user_store_dir(cache))
