"""Shared helpers for the corpus fetch scripts: download, verify, extract. Standard library only.

* :func:`download` streams a URL (``http(s)://`` or ``file://``) into ``<archive>.part``,
  resuming an interrupted download with an HTTP ``Range`` request (a server that ignores the
  range is detected and the download starts over), prints progress, checks the pinned
  checksum and only then renames the file to its final name (``os.replace``, atomic), so a
  file under the final name is always complete.
* :func:`verify` / :func:`file_digests` compute MD5 and SHA-256 in one pass and compare them
  with the pinned values; a mismatch raises :class:`ChecksumMismatchError`.
* :func:`require_verified` refuses to go on with an archive that has no pinned checksum
  unless the user passed ``--no-verify``; it prints the computed hashes so they can be pinned.
* :func:`safe_extract` unpacks a tar (any compression) or zip archive into a staging folder
  inside the destination, refusing members whose path is absolute or contains ``..``, links,
  and device files, then moves the result into place. Nothing is written outside the
  destination, and an interrupted extraction leaves only the staging folder behind.
* :func:`fetch_and_extract` chains them; :func:`make_parser` gives every script the same
  ``--dest``, ``--no-verify``, ``--checksum`` and ``--remove-archive`` options.
"""

from __future__ import annotations

import argparse
import filecmp
import hashlib
import http.client
import io
import os
import re
import shutil
import stat
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import BinaryIO, Callable

HASH_ALGORITHMS = ("md5", "sha256")
DEFAULT_DEST = Path("data") / "corpora"
USER_AGENT = "ttslab-data-scripts/1.0 (+python urllib)"

Report = Callable[[str], None]


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class DownloadError(RuntimeError):
    """A download, verification or extraction step failed; the message says what to do."""


class ChecksumMismatchError(DownloadError):
    """The file's hash differs from the pinned one."""


class UnverifiedArchiveError(DownloadError):
    """No checksum is pinned for the archive and ``--no-verify`` was not given."""


class UnsafeArchiveError(DownloadError):
    """An archive member would land outside the destination, or is a link or device."""


# --------------------------------------------------------------------------- checksums

def parse_checksum(text: str) -> dict[str, str]:
    """``"sha256:ab12..."`` -> ``{"sha256": "ab12..."}`` (for the ``--checksum`` option)."""
    algorithm, sep, digest = text.partition(":")
    algorithm, digest = algorithm.strip().lower(), digest.strip().lower()
    expected_length = {"md5": 32, "sha256": 64}.get(algorithm)
    if not sep or expected_length is None or not re.fullmatch(f"[0-9a-f]{{{expected_length}}}", digest):
        raise ValueError(f"checksum must look like md5:<32 hex digits> or sha256:<64 hex digits>, got {text!r}")
    return {algorithm: digest}


def file_digests(path: str | os.PathLike, algorithms=HASH_ALGORITHMS, report: Report | None = None) -> dict[str, str]:
    """Hex digests of the file for each algorithm, computed in a single read."""
    hashers = {name: hashlib.new(name) for name in algorithms}
    path = Path(path)
    progress = _Progress(f"hashing {path.name}", path.stat().st_size, 0, report) if report else None
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            for h in hashers.values():
                h.update(block)
            if progress:
                progress.advance(len(block))
    if progress:
        progress.finish()
    return {name: h.hexdigest() for name, h in hashers.items()}


def verify(path: str | os.PathLike, expected: dict[str, str] | None, digests: dict[str, str] | None = None) -> dict[str, str]:
    """Compare the file's digests with ``expected``; raise :class:`ChecksumMismatchError`.

    ``digests`` (already computed) saves reading the file again. Returns the digests.
    """
    digests = digests if digests is not None else file_digests(path)
    for algorithm, want in (expected or {}).items():
        got = digests.get(algorithm) or file_digests(path, [algorithm])[algorithm]
        if got.lower() != want.lower():
            raise ChecksumMismatchError(
                f"{algorithm} of {path} is {got}, but {want} is expected: the download is corrupt or the "
                "file on the server changed. Delete it and download again; if the official page now lists "
                "another checksum, pass it with --checksum.")
    return digests


def require_verified(path: Path, digests: dict[str, str], expected: dict[str, str] | None,
                     no_verify: bool, report: Report = _stderr) -> None:
    """Refuse an archive without a pinned checksum unless ``no_verify``; print its hashes."""
    if expected:
        report(f"verified {path.name}: " + ", ".join(f"{a} {d}" for a, d in expected.items()))
        return
    hashes = "\n".join(f"  {a}: {d}" for a, d in digests.items())
    if no_verify:
        report(f"WARNING: {path.name} has no pinned checksum; extracting it unverified (--no-verify). Its hashes:\n{hashes}")
        return
    raise UnverifiedArchiveError(
        f"no checksum is pinned for {path.name}, so it will not be extracted unverified. Its hashes are:\n{hashes}\n"
        "Compare them with the checksum on the corpus' official page, then run again with "
        "--checksum sha256:<hex> (or md5:<hex>), or with --no-verify to extract it anyway.")


# --------------------------------------------------------------------------- download

class _Progress:
    """Prints ``label: done / total (percent) rate`` at most once a second (every 10 s off a terminal)."""

    def __init__(self, label: str, total: int | None, done: int, report: Report | None):
        self.label, self.total, self.done, self.report = label, total, done, report
        self.start_done, self.start = done, time.monotonic()
        self.interval = 1.0 if sys.stderr.isatty() else 10.0
        self.last = 0.0

    def advance(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if self.report and now - self.last >= self.interval:
            self.last = now
            self.report(self.line(now))

    def finish(self) -> None:
        if self.report:
            self.report(self.line(time.monotonic()))

    def line(self, now: float) -> str:
        mb = self.done / 1e6
        rate = (self.done - self.start_done) / 1e6 / max(now - self.start, 1e-6)
        if self.total:
            return f"{self.label}: {mb:,.1f} / {self.total / 1e6:,.1f} MB ({100 * self.done / self.total:5.1f} %) {rate:,.1f} MB/s"
        return f"{self.label}: {mb:,.1f} MB {rate:,.1f} MB/s"


def _content_range(header: str | None) -> tuple[int | None, int | None]:
    """``"bytes 100-199/1000"`` -> ``(100, 1000)``; ``"bytes */1000"`` -> ``(None, 1000)``."""
    match = re.fullmatch(r"\s*bytes\s+(?:(\d+)-\d+|\*)/(\d+|\*)\s*", header or "")
    if not match:
        return None, None
    start, total = match.groups()
    return (int(start) if start else None), (int(total) if total and total != "*" else None)


def _open_file_url(url: str, offset: int) -> tuple[BinaryIO, int, int]:
    """A local ``file://`` URL, read from ``offset`` (the local equivalent of a Range request)."""
    path = Path(urllib.request.url2pathname(urllib.parse.urlparse(url).path))
    if not path.is_file():
        raise DownloadError(f"{url}: no such file {path}")
    total = path.stat().st_size
    if offset > total:
        offset = 0
    stream = open(path, "rb")
    stream.seek(offset)
    return stream, offset, total


def _open_http_url(url: str, offset: int, timeout: float) -> tuple[BinaryIO, int, int | None]:
    """Open ``url`` asking for bytes from ``offset``; return ``(stream, actual offset, total size)``.

    The actual offset is 0 when the server ignored the range (status 200): the caller then
    starts the file over. A 416 reply whose total equals ``offset`` means the file is complete.
    """
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    if offset:
        request.add_header("Range", f"bytes={offset}-")
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and offset:
            _, total = _content_range(exc.headers.get("Content-Range"))
            if total == offset:
                return io.BytesIO(b""), offset, total
            return _open_http_url(url, 0, timeout)
        raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(f"{url}: cannot connect ({exc}); check the network or use --url with a mirror") from exc
    if response.status == 206:
        start, total = _content_range(response.headers.get("Content-Range"))
        if start != offset:
            response.close()
            raise DownloadError(f"{url}: asked for bytes from {offset}, server sent {response.headers.get('Content-Range')!r}")
        return response, offset, total
    length = response.headers.get("Content-Length")
    return response, 0, int(length) if length and length.isdigit() else None


def _open_url(url: str, offset: int, timeout: float) -> tuple[BinaryIO, int, int | None]:
    if urllib.parse.urlparse(url).scheme == "file":
        return _open_file_url(url, offset)
    return _open_http_url(url, offset, timeout)


def download(url: str, dest: str | os.PathLike, *, expected: dict[str, str] | None = None,
             chunk_size: int = 1 << 20, timeout: float = 60.0, report: Report | None = _stderr) -> tuple[Path, dict[str, str]]:
    """Download ``url`` to ``dest`` with resume and verification; return ``(path, digests)``.

    Bytes go to ``<dest>.part``; an existing ``.part`` is resumed. When the transfer is
    complete the file is hashed (MD5 and SHA-256), checked against ``expected`` (a
    mismatching ``.part`` is deleted, so the next run starts afresh) and renamed to ``dest``.
    If ``dest`` already exists it is only verified.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        if report:
            report(f"{dest} already downloaded; verifying it")
        return dest, verify(dest, expected, file_digests(dest, report=report))

    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    stream, offset, total = _open_url(url, have, timeout)
    if report:
        if have and offset == have:
            report(f"resuming {dest.name} at {have:,} bytes")
        elif have:
            report(f"the server does not support resuming; downloading {dest.name} again from the start")
        report(f"downloading {url}\n         -> {part}")
    progress = _Progress(dest.name, total, offset, report)
    with stream, open(part, "r+b" if offset else "wb") as out:
        out.seek(offset)
        out.truncate()
        try:
            for block in iter(lambda: stream.read(chunk_size), b""):
                out.write(block)
                progress.advance(len(block))
        except (OSError, http.client.HTTPException) as exc:  # dropped connection, timeout, short read
            raise DownloadError(f"the download of {url} broke off after {out.tell():,} bytes ({exc!r}); "
                                "run the script again to resume") from exc
        finally:
            out.flush()
            os.fsync(out.fileno())
    progress.finish()

    size = part.stat().st_size
    if total is not None and size != total:
        raise DownloadError(f"{part} has {size:,} of {total:,} bytes: the connection dropped. Run the script again to resume.")
    digests = file_digests(part, report=report)
    try:
        verify(part, expected, digests)
    except ChecksumMismatchError:
        part.unlink(missing_ok=True)
        raise
    os.replace(part, dest)
    return dest, digests


# --------------------------------------------------------------------------- extraction

def _check_member_name(name: str) -> None:
    """Refuse absolute paths, drive letters and ``..`` components (``zip slip``)."""
    if not name or name.startswith(("/", "\\")) or PureWindowsPath(name).drive or "\x00" in name:
        raise UnsafeArchiveError(f"archive member {name!r} has an absolute path; refusing to extract")
    parts = PurePosixPath(name.replace("\\", "/")).parts
    if ".." in parts:
        raise UnsafeArchiveError(f"archive member {name!r} points outside the destination ('..'); refusing to extract")


def _inside(base: Path, name: str) -> Path:
    target = (base / name).resolve()
    if target != base and base not in target.parents:
        raise UnsafeArchiveError(f"archive member {name!r} would be written to {target}, outside {base}; refusing to extract")
    return target


def _extract_tar(archive: Path, staging: Path, progress: _Progress) -> None:
    # Stream mode ("r|*") reads the archive once, member by member: each member is checked
    # before it is written, and nothing is written outside ``staging``.
    with tarfile.open(archive, "r|*") as tar:
        for member in tar:
            _check_member_name(member.name)
            _inside(staging, member.name)
            if member.issym() or member.islnk():
                raise UnsafeArchiveError(f"archive member {member.name!r} is a link (to {member.linkname!r}); refusing to extract")
            if not (member.isfile() or member.isdir()):
                raise UnsafeArchiveError(f"archive member {member.name!r} is a device or pipe; refusing to extract")
            if hasattr(tarfile, "data_filter"):
                tar.extract(member, staging, filter="data")
            else:  # pragma: no cover - Python without PEP 706 filters
                tar.extract(member, staging)
            progress.advance(1)


def _extract_zip(archive: Path, staging: Path, progress: _Progress) -> None:
    with zipfile.ZipFile(archive) as zf:
        members = zf.infolist()
        for info in members:  # check everything before writing anything
            _check_member_name(info.filename)
            _inside(staging, info.filename)
            if stat.S_ISLNK(info.external_attr >> 16):
                raise UnsafeArchiveError(f"archive member {info.filename!r} is a symbolic link; refusing to extract")
        for info in members:
            zf.extract(info, staging)
            progress.advance(1)


def _conflicts(src: Path, dst: Path) -> list[Path]:
    """Paths under ``dst`` that moving ``src``'s content there would change.

    A file identical to the one already there is no conflict: LibriTTS repeats its top-level
    files (SPEAKERS.txt, ...) in every subset archive.
    """
    found = []
    for child in src.iterdir():
        target = dst / child.name
        if not target.exists():
            continue
        if child.is_dir() and target.is_dir():
            found += _conflicts(child, target)
        elif not (child.is_file() and target.is_file() and filecmp.cmp(child, target, shallow=False)):
            found.append(target)
    return found


def _merge_move(src: Path, dst: Path) -> None:
    """Move ``src``'s content into ``dst``, merging folders that exist in both."""
    for child in src.iterdir():
        target = dst / child.name
        if target.is_dir() and child.is_dir():
            _merge_move(child, target)
        else:
            os.replace(child, target)


def safe_extract(archive: str | os.PathLike, dest: str | os.PathLike, report: Report | None = _stderr) -> list[Path]:
    """Extract a tar (``.tar``, ``.tar.gz``, ``.tar.bz2`` ...) or zip archive into ``dest`` safely.

    Returns the top-level paths created. Raises :class:`UnsafeArchiveError` (and writes
    nothing into ``dest``) for a member with an absolute path, a ``..`` component, a link or a
    device; raises :class:`FileExistsError` if a file it would create already exists.
    """
    archive, dest = Path(archive), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    dest = dest.resolve()
    staging = Path(tempfile.mkdtemp(prefix=f".{archive.name}.", suffix=".extracting", dir=dest))
    progress = _Progress(f"extracting {archive.name}", None, 0, None)
    if report:
        report(f"extracting {archive} -> {dest}")
    try:
        if archive.suffix.lower() == ".zip" or (not tarfile.is_tarfile(archive) and zipfile.is_zipfile(archive)):
            _extract_zip(archive, staging, progress)
        elif tarfile.is_tarfile(archive):
            _extract_tar(archive, staging, progress)
        else:
            raise DownloadError(f"{archive} is neither a tar nor a zip archive (corrupt download?)")
        clashes = _conflicts(staging, dest)
        if clashes:
            raise FileExistsError(f"extracting {archive.name} would overwrite {clashes[0]} (and {len(clashes) - 1} more); "
                                  "remove them or choose another --dest")
        top_level = sorted(dest / child.name for child in staging.iterdir())
        _merge_move(staging, dest)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if report:
        report(f"extracted {progress.done:,} members")
    return top_level


# --------------------------------------------------------------------------- script plumbing

def make_parser(description: str, *, single_archive: bool = True) -> argparse.ArgumentParser:
    """An argument parser with the options every fetch script shares."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST,
                        help=f"folder that receives the archive(s) and the extracted corpus (default: {DEFAULT_DEST})")
    parser.add_argument("--no-verify", action="store_true",
                        help="extract an archive even if no checksum is pinned for it (its hashes are printed)")
    parser.add_argument("--remove-archive", action="store_true", help="delete each archive after a successful extraction")
    if single_archive:
        parser.add_argument("--url", help="download from this URL (a mirror, or a file:// path to a local copy)")
        parser.add_argument("--checksum", type=parse_checksum, metavar="ALG:HEX",
                            help="expected checksum (md5:<hex> or sha256:<hex>), replacing the pinned one")
    return parser


def fetch_and_extract(url: str, archive: Path, extract_to: Path, done_marker: Path | tuple[Path, ...], *,
                      expected: dict[str, str] | None, no_verify: bool = False,
                      remove_archive: bool = False, report: Report = _stderr) -> None:
    """Download ``url`` to ``archive``, verify it, extract it into ``extract_to``.

    Skips everything when ``done_marker`` (a file or folder the extracted corpus contains, or
    a tuple of alternatives) already exists; fails if it is still missing after extraction
    (unexpected archive layout).
    """
    markers = done_marker if isinstance(done_marker, tuple) else (done_marker,)
    present = next((m for m in markers if m.exists()), None)
    if present is not None:
        report(f"{present} already exists; nothing to do (delete it to fetch again)")
        return
    path, digests = download(url, archive, expected=expected, report=report)
    require_verified(path, digests, expected, no_verify, report)
    safe_extract(path, extract_to, report=report)
    if not any(m.exists() for m in markers):
        raise DownloadError(f"extracted {path} but {markers[0]} did not appear: the archive has an unexpected layout")
    if remove_archive:
        path.unlink()
        report(f"removed {path}")


def run(main: Callable[[list[str] | None], None], argv: list[str] | None = None) -> int:
    """Call a script's ``main`` and turn expected failures into a message and exit status 1."""
    try:
        main(argv)
    except (DownloadError, FileExistsError) as exc:
        _stderr(f"error: {exc}")
        return 1
    except KeyboardInterrupt:
        _stderr("interrupted; run the same command again to resume the download")
        return 130
    return 0
