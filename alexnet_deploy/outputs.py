"""Where a command may write (issue #27): every output path checked in one place, against every
input, against the command's other outputs and against what writing it would destroy, before
any work and again once the run holds its lock (a concurrent run may have written meanwhile).

Refused before any work:

* an output that is an input (every file the command reads: a report directory's files, not
  the directory, so a gate may write its summary beside the report it judges);
* two outputs that name one path;
* an output directory that is, or holds, the current directory, the work directory or an input.

``--force`` replaces only what this tool wrote: a file of its own kind (an ONNX file with the
tool's metadata, a JSON report with its schema, a plot it signed), a directory that carries its
marker (:data:`MARKER`, written into every output directory it makes). A directory without the
marker is refused even with ``--force``, saying why; files whose kind carries no mark of its
writer (CSV, Markdown, a TensorRT cache) are replaced with ``--force`` as before. A command
without ``--force`` (bench, compare, gate) replaces its own earlier results as it always has,
but never a file in its output directory that it did not write.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError, UsageError
from alexnet_deploy.fileio import atomic_path, prepare_output

MARKER = ".alexnet-deploy-output.json"
MARKER_SCHEMA = "alexnet-deploy/output/1"
SCHEMA_PREFIX = "alexnet-deploy/"  # every JSON report of the tool carries a schema like this
PLOT_SOFTWARE = "alexnet-deploy"  # the PNG 'Software' text every plot of the tool carries
# What marks a text output as the tool's: the gate's Markdown heading and JUnit suite name.
TEXT_MARKS = {".md": ("alexnet-deploy gate",), ".xml": ('name="alexnet-deploy gate"',)}
# Kinds the tool writes whose content names no writer: replaced where the tool would write them.
UNMARKED_KINDS = (".csv", ".cache", ".parquet", ".plan", ".engine", ".bin")


@dataclass(frozen=True)
class OutputDir:
    """A directory a command writes: its own ``files`` into it (the first, its JSON report,
    identifies an earlier result), or the whole directory replaced (``replaced``). ``legacy``:
    the only names a replaced directory written before markers existed may hold (such a
    directory counts as the tool's own)."""

    path: str | os.PathLike[str]
    files: tuple[str, ...] = ()
    replaced: bool = False
    legacy: tuple[str, ...] = ()


Outputs = Mapping[str, "str | os.PathLike[str] | OutputDir | None"]
Inputs = Mapping[str, "str | os.PathLike[str] | Sequence[str | os.PathLike[str]] | None"]


def _resolved(path: str | os.PathLike[str]) -> Path:
    """The absolute path with links resolved; an empty path is the current directory."""
    return Path(os.fspath(path) or ".").resolve()


def _within(path: Path, folder: Path) -> bool:
    """``path`` is ``folder`` or lies inside it (both resolved)."""
    return path == folder or folder in path.parents


def _listed(outputs: Outputs) -> list[tuple[str, Path, OutputDir | None, bool]]:
    """(label, path as given, directory spec, whether a directory's own file) of every output
    asked for; a directory's own files are listed as outputs of their own."""
    listed = []
    for option, value in outputs.items():
        if value is None:
            continue
        if isinstance(value, OutputDir):
            folder = Path(os.fspath(value.path) or ".")
            listed.append((option, folder, value, False))
            listed += [(option, folder / name, None, True) for name in value.files]
        else:
            listed.append((option, Path(os.fspath(value) or "."), None, False))
    return listed


def check_outputs(
    command: str,
    outputs: Outputs,
    inputs: Inputs | None = None,
    *,
    work_dir: str | os.PathLike[str] | None = None,
    force: bool | None = None,
) -> None:
    """Refuse, with one line saying why, any output of ``command`` that would destroy an
    input, another output, the current or work directory, or a file this tool did not write.

    ``outputs``: option -> a file path, an :class:`OutputDir`, or None (not asked for).
    ``inputs``: what -> a path or several ("input model" -> m.onnx; "current report" -> its
    files); missing ones are skipped (they fail on their own). ``force``: the command's
    --force; None for a command without one, which replaces its own earlier results as it
    always has."""
    listed = _listed(outputs)
    given = [
        (what, Path(os.fspath(p)))
        for what, value in (inputs or {}).items()
        for p in (value if isinstance(value, list | tuple) else [value])
        if p is not None and os.fspath(p) != "" and os.path.lexists(p)
    ]
    _check_conflicts(listed, given, work_dir)
    for option, path, folder, owned in listed:
        if folder is not None:
            _check_directory(command, option, path, folder, force)
        elif owned and path.is_dir():  # its existence is judged with its directory's
            raise AlexnetDeployError(f"{option} path {path} is a directory")
        elif not owned:
            _check_file(option, path, force)


def _check_conflicts(listed, inputs: list[tuple[str, Path]], work_dir) -> None:
    seen: dict[Path, str] = {}
    places = {"the current directory": Path.cwd().resolve()}
    if work_dir is not None:
        places["the work directory"] = _resolved(work_dir)
    for option, path, folder, _ in listed:
        real = _resolved(path)
        if real in seen and seen[real] != option:
            raise UsageError(
                f"{seen[real]} and {option} both name {path}",
                hint="give each output its own path",
            )
        seen.setdefault(real, option)
        for what, source in inputs:
            if real == _resolved(source):
                raise UsageError(
                    f"{option} {path} is the {what}: writing there would destroy it",
                    hint=f"choose another path for {option}; a command never writes over its inputs",
                )
        if folder is None:
            continue
        for name, place in places.items():
            if _within(place, real):
                relation = "is" if place == real else "holds"
                raise UsageError(
                    f"{option} {path} {relation} {name}: writing that directory could destroy "
                    "what is in it",
                    hint=f"give {option} a directory of its own (a new one is made)",
                )
        for what, source in inputs:
            if real in _resolved(source).parents:
                raise UsageError(
                    f"{option} {path} holds the {what} ({source}): writing that directory "
                    "could destroy it",
                    hint=f"give {option} a directory of its own",
                )


def _with(option: str) -> str:
    """' with --plot' for a command-line option; nothing for a file named after another."""
    return f" with {option}" if option.startswith("-") else ""


def _check_file(option: str, path: Path, force: bool | None) -> None:
    if path.is_dir():
        raise AlexnetDeployError(
            f"{option} path {path} is a directory",
            hint=f"pass a file name{_with(option)}",
        )
    if os.path.lexists(path):
        if force is False:
            raise AlexnetDeployError(
                f"{option} {path} already exists",
                hint=f"pass --force to replace it, or choose another path{_with(option)}",
            )
        why = not_ours(path)  # with --force, or a command without it: only the tool's own
        if why:
            raise AlexnetDeployError(
                f"{option} {path} exists and was not written by alexnet-deploy ({why}); "
                "--force replaces only this tool's own outputs",
                hint=f"remove it yourself if it may go, or choose another path{_with(option)}",
            )
    prepare_output(path, force=True, what=option, option=option)  # a writable place


def _check_directory(
    command: str, option: str, path: Path, folder: OutputDir, force: bool | None
) -> None:
    if os.path.lexists(path) and not path.is_dir():
        raise AlexnetDeployError(
            f"{option} {path} is a file, not a directory",
            hint=f"give {option} a directory (a new one is made)",
        )
    marked = (path / MARKER).is_file()
    if folder.replaced and path.is_dir() and any(path.iterdir()):
        entries = {entry.name for entry in path.iterdir()}
        ours = marked or bool(folder.legacy and entries <= set(folder.legacy))
        if force is False:
            raise AlexnetDeployError(
                f"{option} {path} already exists",
                hint=f"pass --force to replace it, or choose another path{_with(option)}"
                if ours
                else f"it has no {MARKER} (not made by alexnet-deploy): even --force leaves it; "
                f"choose another path{_with(option)}",
            )
        if not ours:
            raise AlexnetDeployError(
                f"{option} {path} exists and was not made by alexnet-deploy (it has no {MARKER}); "
                f"{command} replaces the whole directory, so nothing in it was touched",
                hint=f"remove it yourself if it may go, or give {option} a new directory",
            )
        if added := _not_in_manifest(path, folder.legacy):
            raise AlexnetDeployError(
                f"{option} {path} holds {added[0]}"
                + (f" and {len(added) - 1} more file(s)" if len(added) > 1 else "")
                + f", which alexnet-deploy did not write there; {command} replaces the whole "
                "directory, so nothing in it was touched",
                hint=f"move those files out first, or give {option} a new directory",
            )
    present = [name for name in folder.files if os.path.lexists(path / name)]
    if present:
        report = path / folder.files[0]
        vouched = marked or (report.is_file() and not_ours(report) is None)
        foreign = [name for name in present if not vouched and not _recognised(path / name)]
        if foreign:
            raise AlexnetDeployError(
                f"{option} {path} holds {foreign[0]}, which alexnet-deploy did not write (no "
                f"{MARKER}, no {folder.files[0]} of its own); nothing in it was touched",
                hint=f"give {option} another directory, or remove those files yourself",
            )
        if force is False:
            raise AlexnetDeployError(
                f"{option} {path} already holds a {command} result ({', '.join(present)})",
                hint=f"pass --force to replace it, or choose another directory{_with(option)}",
            )
    # a writable place: the directory itself, or the nearest existing one above it
    prepare_output(path / MARKER, force=True, what=option, option=option)


def not_ours(path: str | os.PathLike[str]) -> str | None:
    """Why the existing file ``path`` is not recognisably one this tool wrote, or None when it
    is (or when its kind carries no mark of its writer: CSV, Markdown, caches)."""
    path = Path(path)
    if (path.parent / MARKER).is_file():
        return None
    suffix = path.suffix.lower()
    if suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "not a JSON report"
        schema = data.get("schema") if isinstance(data, dict) else None
        if isinstance(schema, str) and schema.startswith(SCHEMA_PREFIX):
            return None
        return "a JSON file without this tool's schema"
    if suffix == ".onnx":
        return None if _onnx_is_ours(path) else "an ONNX file without this tool's metadata"
    if suffix == ".png":
        try:
            with open(path, "rb") as handle:
                head = handle.read(1 << 16)  # text chunks come before the image data
        except OSError as err:
            return f"unreadable: {err.strerror}"
        if head.startswith(b"\x89PNG") and PLOT_SOFTWARE.encode() in head:
            return None
        return "an image this tool did not plot"
    if suffix in TEXT_MARKS:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                head = handle.read(4096)
        except OSError as err:
            return f"unreadable: {err.strerror}"
        if any(mark in head for mark in TEXT_MARKS[suffix]):
            return None
        return f"a {suffix[1:]} file this tool did not write"
    if suffix in UNMARKED_KINDS:
        return None
    return f"not a kind of file alexnet-deploy writes ({suffix or 'no suffix'})"


def _recognised(path: Path) -> bool:
    """``path`` is of a kind that names its writer (JSON, ONNX, PNG) and names this tool."""
    return path.suffix.lower() in (".json", ".onnx", ".png") and not_ours(path) is None


def _onnx_is_ours(path: Path) -> bool:
    import onnx

    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception:  # onnx raises DecodeError, ValueError, ... for bytes that are not ONNX
        return False
    return any(p.key.startswith(C.METADATA_PREFIX) for p in model.metadata_props)


def _files_under(directory: Path) -> list[str]:
    return sorted(
        str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file() and p.name != MARKER
    )


def _not_in_manifest(directory: Path, legacy: tuple[str, ...] = ()) -> list[str]:
    """Files in a marked ``directory`` that its marker's manifest does not list (a user's,
    added after the tool wrote it). A marker written as the directory was made (bench's, say)
    lists nothing: then only the ``legacy`` names count as the tool's (none: not judged)."""
    try:
        listed = json.loads((directory / MARKER).read_text(encoding="utf-8")).get("files")
    except (OSError, ValueError, AttributeError):
        listed = None
    if not isinstance(listed, list):
        if not legacy:
            return []
        listed = legacy
    return [name for name in _files_under(directory) if name not in set(listed)]


def mark_directory(
    directory: str | os.PathLike[str], command: str, *, complete: bool = False
) -> Path:
    """Write the marker that makes ``directory`` recognisably this tool's output (a later
    ``--force`` may replace it); a bookkeeping file, not one of the run's changes. ``complete``:
    the directory is whole (a staged one, replaced at once): its files are listed in the marker,
    so a file added later keeps a ``--force`` from replacing the directory."""
    payload = {"schema": MARKER_SCHEMA, "command": command}
    if complete:
        payload["files"] = _files_under(Path(directory))
    marker = Path(directory) / MARKER
    with atomic_path(marker, record=False) as tmp:
        tmp.write_text(json.dumps(payload) + "\n")
    return marker
