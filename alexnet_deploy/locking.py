"""One writer at a time per directory of shared state (the work directory: engines, caches,
reports; the calibration output directory: INT8 siblings and range caches).

Two runs that build the same engine or calibrate the same model used to race; now the second
waits for the first (saying whom it waits for) and then finds the first one's result. The lock is
``filelock``'s (an OS lock on DIR/.alexnet-deploy.lock: released when the holder exits, even
when killed).

One lock per run: each job of the orchestration layer (workflow.py) takes its work directory's
lock once, at its top, and the stages it calls below do not take it again (run_bench and the
artifact making check that it is held: :func:`require_held`). The lock stays re-entrant within
a process for the stages that are also commands of their own (``build``: engines/build.py;
``package``): under a job their hold nests, never waits and never touches the OS lock. Each
acquisition of the OS lock is logged at DEBUG ("STAGE takes the lock of DIR"); a nested hold
logs "STAGE holds the lock of DIR already".
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from filelock import FileLock, Timeout

from alexnet_deploy import constants as C
from alexnet_deploy.errors import AlexnetDeployError

log = logging.getLogger(__name__)
LOCK_NAME = ".alexnet-deploy.lock"
OWNER_NAME = ".alexnet-deploy.lock.owner"
_LOCKS: dict[str, FileLock] = {}
_GUARD = threading.Lock()


def _lock_for(directory: Path) -> FileLock:
    key = os.path.realpath(directory)
    with _GUARD:
        if key not in _LOCKS:
            _LOCKS[key] = FileLock(os.path.join(key, LOCK_NAME))
        return _LOCKS[key]


def _owner(directory: Path) -> str:
    try:
        data = json.loads((directory / OWNER_NAME).read_text())
        return f"pid {data['pid']} ({data['stage']}, since {data['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another run"


def holds(directory: str | os.PathLike[str]) -> bool:
    """Whether this run (this thread) holds DIRECTORY's lock."""
    return _lock_for(Path(directory)).is_locked


def require_held(directory: str | os.PathLike[str], stage: str) -> None:
    """A stage that writes shared state under its caller's lock: a bug when it is not held."""
    if not holds(directory):
        raise RuntimeError(
            f"{stage} writes {directory} without its lock: call it through its job "
            "(alexnet_deploy.workflow or alexnet_deploy.api), which takes the lock once"
        )


@contextlib.contextmanager
def directory_lock(
    directory: str | os.PathLike[str], stage: str, *, wait_s: float | None = None
) -> Iterator[None]:
    """Hold DIRECTORY's lock while ``stage`` writes there; wait up to ``wait_s`` seconds
    (default C.LOCK_WAIT_S) for another run that holds it, then fail naming that run."""
    directory = Path(directory)
    wait_s = C.LOCK_WAIT_S if wait_s is None else wait_s
    try:
        directory.mkdir(parents=True, exist_ok=True)
        lock = _lock_for(directory)
        outermost = not lock.is_locked
        lock.acquire(timeout=0)
    except Timeout:
        log.warning("%s waits for %s, which holds %s", stage, _owner(directory), directory)
        try:
            lock.acquire(timeout=wait_s)
        except Timeout:
            raise AlexnetDeployError(
                f"{directory} is in use by {_owner(directory)}; waited {wait_s:g} s",
                hint="wait for that run to finish, or give this one another --work-dir",
            ) from None
    except OSError as err:
        raise AlexnetDeployError(
            f"cannot lock {directory} ({err.strerror or err})",
            hint="make the directory writable, or choose another --work-dir",
        ) from None
    log.debug(
        "%s takes the lock of %s" if outermost else "%s holds the lock of %s already",
        stage,
        directory,
    )
    try:  # the holder's name, for whoever waits
        if outermost:
            with contextlib.suppress(OSError):
                (directory / OWNER_NAME).write_text(
                    json.dumps(
                        {"pid": os.getpid(), "stage": stage, "since": time.strftime("%H:%M:%S")}
                    )
                )
        yield
    finally:
        if outermost:
            with contextlib.suppress(OSError):
                (directory / OWNER_NAME).unlink()
        lock.release()
