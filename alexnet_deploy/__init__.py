"""alexnet-deploy: take AlexNet from PyTorch to inference engines and prove how fast and faithful they are.

The Python API is :mod:`alexnet_deploy.api` (docs/api.md): ``from alexnet_deploy import api``,
then ``api.export``, ``api.calibrate``, ``api.build``, ``api.bench``, ``api.gate``,
``api.compare``, ``api.plan``, ``api.predict``, ``api.package``. The functions live under
``api`` rather than at the package root because ``bench``, ``gate`` and ``predict`` already
name sub-packages and modules here. ``alexnet_deploy.api`` is imported on first use, so
``import alexnet_deploy`` (and ``alexnet-deploy --help``) stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from alexnet_deploy import api

__version__ = "0.1.0"
__all__ = ["__version__", "api"]


def __getattr__(name: str):
    if name == "api":
        return importlib.import_module("alexnet_deploy.api")
    raise AttributeError(f"module 'alexnet_deploy' has no attribute {name!r}")
