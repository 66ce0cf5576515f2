"""Downloading official checkpoints into a local cache: resumable, verified, atomic.

A download streams into `<name>.part` next to its destination. An interrupted download keeps
the `.part` and the next call continues it with an HTTP Range request; a server that ignores
Range sends the whole file again, and the `.part` is rewritten from the start. The finished
file is verified before it is renamed into place, so the cache never holds a file with the
final name that has not been: against the registry's sha256 where one is known, else by its
contents (read with `weights_only=True`, its keys and shapes exactly those of the model, its
shape fingerprint that model's; the SAM 2 files, whose checksums Meta does not publish).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import re
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO
from urllib.parse import urlsplit

import torch

from segany.checkpoints import fingerprint_of_spec, fingerprint_of_state_dict, read_state_dict
from segany.errors import CheckpointError, DownloadError
from segany.model_spec import ModelSpec
from segany.modeling.build import build_model
from segany.paths import HOME_ENV, cache_dir, checkpoints_dir  # noqa: F401  (re-exported)
from segany.registry import get_spec

_CHUNK = 1 << 20  # 1 MiB: large enough for throughput, small enough for a smooth progress bar
_USER_AGENT = "segany-downloader"


def checkpoint_path(name_or_spec: str | ModelSpec) -> Path:
    """Where the cached checkpoint of a model lives (whether or not it has been downloaded)."""
    spec = _resolve(name_or_spec)
    return checkpoints_dir() / _file_name(spec, spec.url)


@dataclass(frozen=True)
class Downloaded:
    """A verified checkpoint in place.

    path: the file; sha256: its hex digest, when it was computed (a fresh download, or a cached
    file checked against a known sha256), else None; fetched: whether this call downloaded it;
    verified_by: "sha256" (the registry's checksum), "contents" (keys, shapes and fingerprint of
    the model: no checksum is known) or "cache" (a cached file without a known checksum, which
    was verified by its contents before it got its name).
    """

    path: Path
    sha256: str | None
    fetched: bool
    verified_by: str


def download_checkpoint(
    name_or_spec: str | ModelSpec,
    *,
    url: str | None = None,
    dest_dir: str | Path | None = None,
    progress: bool = True,
    timeout: float = 30,
) -> Path:
    """Download a model's official checkpoint (once) and return its verified local path.

    `name_or_spec` is a registered model name (or alias, e.g. "sam2.1_hiera_tiny") or a
    `ModelSpec` (e.g. one with `url`/`sha256` replaced through `dataclasses.replace`). `url`
    overrides the spec's URL (a mirror); the file is verified all the same. The file goes to
    `dest_dir`, by default `segany.paths.checkpoints_dir()`. A file already there (with the
    right hash, when one is known) is returned without any network access. `timeout`
    (seconds) applies to each network operation. Progress is shown with tqdm when it is
    installed and `progress` is true. See `fetch_checkpoint` for the digest and how the file
    was verified.

    Raises `DownloadError` when the model has no download URL, the server cannot be reached or
    answers with an error, the transfer is interrupted (the partial file is kept, and calling
    again resumes it), or the file is not the model's: a sha256 mismatch, or, where no sha256
    is known, a file that is not a checkpoint of this model (the file is deleted).
    """
    return fetch_checkpoint(
        name_or_spec, url=url, dest_dir=dest_dir, progress=progress, timeout=timeout
    ).path


def fetch_checkpoint(
    name_or_spec: str | ModelSpec,
    *,
    url: str | None = None,
    dest_dir: str | Path | None = None,
    progress: bool = True,
    timeout: float = 30,
) -> Downloaded:
    """`download_checkpoint`, returning the file's `Downloaded` record (path, sha256 and how it
    was verified) instead of its path alone."""
    spec = _resolve(name_or_spec)
    url = url or spec.url
    if not url:
        raise DownloadError(
            f"model {spec.name} has no official checkpoint to download; load weights you "
            "have with build_sam(name, checkpoint=PATH)."
        )
    folder = Path(dest_dir).expanduser() if dest_dir is not None else checkpoints_dir()
    dest = folder / _file_name(spec, url)
    if dest.is_file():
        cached = _cached(dest, spec)
        if cached is not None:
            return cached

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DownloadError(
            f"cannot create the download folder {folder}: {e}; set {HOME_ENV} to a writable "
            "folder, or pass another destination."
        ) from e
    part = dest.with_name(dest.name + ".part")
    digest = _fetch(url, part, dest, timeout=timeout, progress=progress)
    _verify(part, digest, spec, url, dest)
    if not spec.sha256:
        _verify_contents(part, digest, spec, url, dest)
    os.replace(part, dest)  # atomic on one file system: readers never see a half file
    return Downloaded(dest, digest, True, "sha256" if spec.sha256 else "contents")


def _resolve(name_or_spec: str | ModelSpec) -> ModelSpec:
    return get_spec(name_or_spec) if isinstance(name_or_spec, str) else name_or_spec


def _file_name(spec: ModelSpec, url: str | None) -> str:
    if spec.checkpoint_name:
        return spec.checkpoint_name
    from_url = PurePosixPath(urlsplit(url).path).name if url else ""
    if not from_url:
        raise DownloadError(
            f"model {spec.name} has no official checkpoint (no file name or URL in its spec); "
            "load weights you have with build_sam(name, checkpoint=PATH)."
        )
    return from_url


def _cached(path: Path, spec: ModelSpec) -> Downloaded | None:
    """The cached file as a `Downloaded` if it is the expected one (by hash if known, else by
    size if known), else None. Without a known hash the file is trusted: a download only gets
    its final name once its contents were verified."""
    if spec.size_bytes and path.stat().st_size != spec.size_bytes:
        return None  # spares hashing gigabytes that cannot match
    if spec.sha256:
        digest = _sha256_of_file(path)
        return Downloaded(path, digest, False, "sha256") if digest == spec.sha256.lower() else None
    return Downloaded(path, None, False, "cache")


def _sha256_of_file(path: Path, hasher: hashlib._Hash | None = None) -> str:
    hasher = hasher or hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(_CHUNK):
            hasher.update(block)
    return hasher.hexdigest()


def _fetch(url: str, part: Path, dest: Path, *, timeout: float, progress: bool) -> str:
    """Bring `part` to the complete file (resuming what is there); return its sha256 hex."""
    for _ in range(2):  # the second pass only after discarding a .part the server cannot resume
        offset = part.stat().st_size if part.is_file() else 0
        hasher = hashlib.sha256()
        if offset:
            _sha256_of_file(part, hasher)  # hash what we have, then keep hashing as we append
        try:
            response = _open(url, offset, timeout, dest)
        except _RangeNotSatisfiable as e:
            if e.total == offset:  # the .part was already complete when the last run stopped
                return hasher.hexdigest()
            part.unlink()
            continue
        with response:
            resumed = offset > 0 and response.status == 206
            if resumed and _content_range_start(response.headers.get("Content-Range")) != offset:
                part.unlink()
                continue
            if not resumed:  # a fresh download, or a server that ignored Range: start over
                offset = 0
                hasher = hashlib.sha256()
            length = response.headers.get("Content-Length")
            total = offset + int(length) if length and length.isdigit() else None
            with open(part, "ab" if resumed else "wb") as out:
                _stream(response, out, hasher, url, part, offset, total, progress, dest.name)
        return hasher.hexdigest()
    raise DownloadError(
        f"the server for {url} cannot resume the partial download; deleted it — run again."
    )


class _RangeNotSatisfiable(Exception):
    """HTTP 416 to a Range request; `total` is the file size the server reported, if any."""

    def __init__(self, total: int | None):
        super().__init__(total)
        self.total = total


def _open(url: str, offset: int, timeout: float, dest: Path) -> http.client.HTTPResponse:
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    request = urllib.request.Request(url, headers=headers)
    instead = f"download the file elsewhere and load it as the checkpoint, or put it at {dest}"
    try:
        return urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            total = re.fullmatch(r"bytes \*/(\d+)", e.headers.get("Content-Range", "").strip())
            e.close()
            raise _RangeNotSatisfiable(int(total.group(1)) if total else None) from None
        raise DownloadError(
            f"the server answered HTTP {e.code} ({e.reason}) for {url}; {instead}."
        ) from e
    except urllib.error.URLError as e:
        raise DownloadError(
            f"could not reach {url} ({e.reason}); you appear to be offline, or the host is "
            f"blocked — {instead}."
        ) from e
    except (OSError, http.client.HTTPException) as e:  # e.g. a timeout or reset while connecting
        raise DownloadError(
            f"could not reach {url} ({type(e).__name__}: {e}); you appear to be offline, or "
            f"the connection is unreliable — {instead}."
        ) from e
    except ValueError as e:  # urllib's "unknown url type"
        raise DownloadError(f"cannot download from {url!r}: {e}") from e


def _content_range_start(value: str | None) -> int | None:
    match = re.fullmatch(r"bytes (\d+)-\d+/(\d+|\*)", (value or "").strip())
    return int(match.group(1)) if match else None


def _stream(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    hasher: hashlib._Hash,
    url: str,
    part: Path,
    done: int,
    total: int | None,
    progress: bool,
    label: str,
) -> None:
    """Copy the response body to `out`, updating `hasher`; raise on a short or broken transfer."""
    bar = _progress_bar(progress, total, done, label)
    try:
        while True:
            try:
                block = response.read(_CHUNK)
            except (OSError, http.client.HTTPException) as e:  # reset, timeout, IncompleteRead
                raise _interrupted(url, part, done, total, e) from e
            if not block:
                break
            try:
                out.write(block)
            except OSError as e:
                raise DownloadError(
                    f"could not write {part}: {e}; free some disk space, or set {HOME_ENV} to "
                    "a folder on another disk."
                ) from e
            hasher.update(block)
            done += len(block)
            if bar is not None:
                bar.update(len(block))
    finally:
        if bar is not None:
            bar.close()
    if total is not None and done < total:
        raise _interrupted(url, part, done, total, None)


def _interrupted(
    url: str, part: Path, done: int, total: int | None, cause: BaseException | None
) -> DownloadError:
    of_total = f" of {total}" if total is not None else ""
    why = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
    return DownloadError(
        f"the download of {url} was interrupted after {done}{of_total} bytes{why}. The partial "
        f"file is kept at {part}; run the same command again to resume."
    )


def _progress_bar(enabled: bool, total: int | None, initial: int, label: str):
    """A tqdm bar when asked for and tqdm is installed (it is optional), else None."""
    if not enabled:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=label
    )


def _verify(part: Path, digest: str, spec: ModelSpec, url: str, dest: Path) -> None:
    """Delete `part` and raise if it is not the file the spec describes."""
    problem = None
    if spec.sha256 and digest != spec.sha256.lower():
        problem = f"its sha256 is {digest}, expected {spec.sha256.lower()}"
    elif not spec.sha256 and spec.size_bytes and part.stat().st_size != spec.size_bytes:
        problem = f"it has {part.stat().st_size} bytes, expected {spec.size_bytes}"
    if problem is None:
        return
    part.unlink(missing_ok=True)
    raise DownloadError(
        f"checksum mismatch: the file downloaded from {url} is corrupted ({problem}); it was "
        "deleted. Run the command again; if it keeps failing, something between you and the "
        f"server alters the file: download it elsewhere, check it with sha256sum, and load "
        f"it as the checkpoint, or put it at {dest}."
    )


def _verify_contents(part: Path, digest: str, spec: ModelSpec, url: str, dest: Path) -> None:
    """Where no sha256 is known: delete `part` and raise unless it is a checkpoint of `spec`
    (read as data only, keys and shapes exactly the model's, fingerprint the model's)."""
    problem = _contents_problem(part, spec)
    if problem is None:
        return
    part.unlink(missing_ok=True)
    raise DownloadError(
        f"the file downloaded from {url} is not a checkpoint of {spec.name}: {problem}. It was "
        f"deleted (its sha256 was {digest}). If the download was cut short, run the command "
        "again; if the address serves another file, download the official one elsewhere and "
        f"load it as the checkpoint, or put it at {dest}."
    )


def _contents_problem(path: Path, spec: ModelSpec) -> str | None:
    """What makes the file at `path` not a checkpoint of `spec`, or None if it is one."""
    try:
        state_dict = read_state_dict(path)
    except CheckpointError as e:
        return f"it cannot be read as a checkpoint ({e})"
    facts = fingerprint_of_state_dict(state_dict)
    expected = fingerprint_of_spec(spec)
    differing = sorted(k for k, v in facts.items() if expected.get(k) != v)
    if "encoder" not in facts or differing:
        shown = ", ".join(f"{k} {facts[k]} (expected {expected.get(k)})" for k in differing)
        return f"its shapes are not those of {spec.name}" + (f": {shown}" if shown else "")
    shapes = _parameter_shapes(spec)
    missing = [k for k in shapes if k not in state_dict]
    unexpected = [k for k in state_dict if k not in shapes]
    mismatched = [
        f"{k} {tuple(state_dict[k].shape)} (expected {shapes[k]})"
        for k in shapes
        if k in state_dict and tuple(state_dict[k].shape) != shapes[k]
    ]
    found = [
        f"{len(items)} {kind} ({_first(items)})"
        for kind, items in (
            ("missing keys", missing),
            ("unexpected keys", unexpected),
            ("shape mismatches", mismatched),
        )
        if items
    ]
    return f"its keys differ from the model's: {'; '.join(found)}" if found else None


def _parameter_shapes(spec: ModelSpec) -> dict[str, tuple[int, ...]]:
    """Key -> shape of the state dict of `spec`'s model, built on the meta device (no memory,
    no initialisation)."""
    with torch.device("meta"):
        model = build_model(spec)
    return {k: tuple(v.shape) for k, v in model.state_dict().items()}


def _first(items: list[str], limit: int = 3) -> str:
    more = f", ... and {len(items) - limit} more" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more
