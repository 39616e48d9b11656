"""Files: content hashes, output-path checks and atomic writes.

An artifact appears under its final name only when it is complete: it is written to a
temporary file in the same directory and renamed over the target, so a failed run never leaves
a half-written file and never destroys the artifact that was there before. Every publication
(:func:`publish`, :func:`replace_directory`, :func:`remove_file`) is noted in the journal of
the run in progress (:func:`recording_changes`), so an interrupted run can say exactly which
files it changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alexnet_deploy.errors import AlexnetDeployError

log = logging.getLogger(__name__)
_CHUNK = 1 << 20


_DIGESTS: dict[tuple, str] = {}
# A file changed this recently may change again within one tick of the file system's clock
# without its times moving, so its hash is not cached yet (git's "racy" rule).
_SETTLED_NS = 2_000_000_000


@dataclass
class Changes:
    """What one run published: files (or directories) it replaced, created and removed, in
    order. A file created and gone again by the end (a scratch file) is not a change."""

    replaced: list[Path] = field(default_factory=list)
    created: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)

    def note(self, path: Path, *, existed: bool, removed: bool = False) -> None:
        path = Path(path)
        if removed:
            self.removed.append(path)
        elif path not in self.replaced and path not in self.created:
            (self.replaced if existed else self.created).append(path)

    def lines(self) -> list[str]:
        """One clause per kind of change ("replaced A, B"); empty when nothing changed."""
        created = [p for p in self.created if os.path.lexists(p)]
        kinds = (("replaced", self.replaced), ("created", created), ("removed", self.removed))
        return [
            f"{verb} {', '.join(str(p) for p in dict.fromkeys(paths))}"
            for verb, paths in kinds
            if paths
        ]


_JOURNAL: list[Changes] = []  # the runs in progress in this process, innermost last
_JOURNAL_GUARD = threading.Lock()


@contextlib.contextmanager
def recording_changes() -> Iterator[Changes]:
    """Note every publication made inside the block (in any thread) in the yielded
    :class:`Changes`: the CLI wraps each command in one, to say what an interrupt left."""
    changes = Changes()
    with _JOURNAL_GUARD:
        _JOURNAL.append(changes)
    try:
        yield changes
    finally:
        with _JOURNAL_GUARD:
            _JOURNAL.remove(changes)


def _note(path: Path, *, existed: bool, removed: bool = False) -> None:
    with _JOURNAL_GUARD:
        for changes in _JOURNAL:
            changes.note(path, existed=existed, removed=removed)


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file's bytes, read in chunks; computed once per process for each
    version of a file (its path, inode, size, modification and change times), so a 244 MB
    model is not re-read for every stage, case and round. Any write moves the change time,
    which no tool can set back, so a rewritten file is hashed again."""
    st = os.stat(path)
    key = (os.path.realpath(path), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
    if key in _DIGESTS:
        return _DIGESTS[key]
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    if time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) > _SETTLED_NS:
        _DIGESTS[key] = digest.hexdigest()
    return digest.hexdigest()


def prepare_output(
    path: str | os.PathLike[str], *, force: bool, what: str = "output", option: str = "-o"
) -> Path:
    """Check that ``path`` may be written, before any expensive work starts.

    Refuses an existing file unless ``force``, and proves that the nearest existing directory
    is writable by creating (and removing) a probe file in it; nothing is left behind.
    """
    out = Path(path)
    if out.exists() and out.is_dir():
        raise AlexnetDeployError(
            f"{what} path {out} is a directory",
            hint=f"pass a file name, for example {option} work/alexnet.onnx",
        )
    if out.exists() and not force:
        raise AlexnetDeployError(
            f"{what} {out} already exists",
            hint=f"pass --force to replace it, or choose another path with {option}",
        )
    existing = next(a for a in [out.parent, *out.parent.parents] if a.exists())
    if not existing.is_dir():
        raise AlexnetDeployError(
            f"cannot write {what} {out}: {existing} is a file, not a directory",
            hint=f"choose an output path inside a directory ({option})",
        )
    try:  # missing directories are made only when the artifact is written (atomic_path)
        fd, probe = tempfile.mkstemp(dir=existing, prefix=".probe-")
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise AlexnetDeployError(
            f"cannot write {what} {out}: directory {existing} is not writable ({err.strerror})",
            hint=f"choose a writable output directory with {option}",
        ) from err
    return out


def require_free_space(
    path: str | os.PathLike[str], needed_bytes: int, *, what: str, option: str = "-o"
) -> None:
    """Refuse, before the work, to write ``what`` (about ``needed_bytes``) where the file
    system holding ``path`` has less free. Some writers do not report a full disk (ONNX's
    shape inference in C++ leaves a truncated file and says nothing), so asking first is the
    only clean way."""
    out = Path(path)
    existing = next(a for a in [out, *out.parents] if a.exists())
    free = shutil.disk_usage(existing).free
    if free < needed_bytes:
        raise AlexnetDeployError(
            f"not enough disk space for {what} in {existing}: about "
            f"{needed_bytes / 2**20:.1f} MiB needed, {free / 2**20:.1f} MiB free",
            hint=f"free space on that file system, or write elsewhere with {option}",
        )


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def staging_directory(target: str | os.PathLike[str]) -> Path:
    """A fresh, empty directory beside ``target`` to build it in, then rename over it; with
    the permissions a plain ``mkdir`` gives (mkdtemp's 0700 made a Triton repository unreadable
    to a server running as another user)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    path = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}."))
    os.chmod(path, 0o777 & ~_current_umask())
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


def remove_stale_temporaries(target: Path) -> list[Path]:
    """Remove the temporary files that killed runs left for ``target`` (``.NAME.PID.*.tmp``
    whose writer is gone; a 244 MB export's stayed forever), saying so; a live writer's are
    kept."""
    stale = []
    for tmp in Path(target).parent.glob(f".{Path(target).name}.*.tmp"):
        pid = tmp.name[len(Path(target).name) + 2 :].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(OSError):
                size = tmp.stat().st_size
                tmp.unlink()
                stale.append(tmp)
                log.warning(
                    "removed %s, a %.1f MB temporary file left by a killed run", tmp, size / 1e6
                )
    return stale


@contextlib.contextmanager
def atomic_path(
    target: str | os.PathLike[str], *, replace: bool = True, record: bool = True
) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it over ``target`` if the block succeeds.

    On any exception the temporary file is removed and ``target`` is left untouched. With
    ``replace=False`` the file is published only if ``target`` still does not exist (see
    :func:`publish`).
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(target)
    fd, tmp_name = tempfile.mkstemp(
        dir=target.parent, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp"
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_current_umask())  # mkstemp makes 0600; artifacts are shared
        publish(tmp, target, replace=replace, record=record)
    finally:
        if tmp.exists():
            tmp.unlink()


def publish(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    replace: bool = True,
    record: bool = True,
) -> Path:
    """Give the complete file ``source`` the name ``target`` (same directory), noting the
    change in the run's journal. With ``replace=False`` it is published only if ``target``
    still does not exist (a link, which fails on an existing name): a concurrent run that
    wrote it first is never overwritten. ``record=False``: a bookkeeping file (a marker)."""
    source, target = Path(source), Path(target)
    existed = os.path.lexists(target)
    if replace:
        os.replace(source, target)
    else:
        try:
            os.link(source, target)
        except FileExistsError:
            raise _appeared(target) from None
        source.unlink()
    if record:
        _note(target, existed=existed)
    return target


def _appeared(target: Path) -> AlexnetDeployError:
    return AlexnetDeployError(
        f"{target} appeared while this run worked (another run wrote it); it was left as it is",
        hint="pass --force to replace it",
    )


def remove_file(path: str | os.PathLike[str]) -> None:
    """Remove ``path`` if it is there, noting it in the run's journal."""
    path = Path(path)
    if os.path.lexists(path):
        path.unlink()
        _note(path, existed=True, removed=True)


def replace_directory(
    staging: str | os.PathLike[str],
    target: str | os.PathLike[str],
    *,
    replace: bool = True,
    concurrent_ok: Callable[[Path], bool] | None = None,
) -> Path:
    """Put the complete ``staging`` directory at ``target``: the old one is moved aside first
    (one rename) and removed after, so a reader finds the old directory, none, or the new one,
    never half of one. When a concurrent run put its own directory there between the two
    renames and ``concurrent_ok`` accepts it, that one is kept and ours dropped. With
    ``replace=False`` a ``target`` that appeared meanwhile is left as it is (an error)."""
    staging, target = Path(staging), Path(target)
    existed = target.exists()
    if existed and not replace:
        raise _appeared(target)
    aside = target.with_name(f".{target.name}.old-{os.getpid()}-{time.monotonic_ns()}")
    with contextlib.suppress(FileNotFoundError):  # nothing there (or a concurrent run moved it)
        target.rename(aside)
    try:
        staging.rename(target)
    except OSError:
        if concurrent_ok is None or not concurrent_ok(target):
            with contextlib.suppress(OSError):
                if not target.exists():
                    aside.rename(target)  # put the old one back: nothing was replaced
            raise
        shutil.rmtree(staging, ignore_errors=True)
    else:
        _note(target, existed=existed)
    shutil.rmtree(aside, ignore_errors=True)
    return target


def write_text_atomic(target: str | os.PathLike[str], text: str) -> Path:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(target)


def write_json_atomic(target: str | os.PathLike[str], payload: Any) -> Path:
    """Write ``payload`` as indented, key-sorted JSON (stable bytes for equal content)."""
    return write_text_atomic(target, json.dumps(payload, indent=2, sort_keys=True) + "\n")
