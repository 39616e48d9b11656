"""The ``alexnet-deploy`` command line (alexnet_deploy/cli/app.py assembles it): one module
per command, each parsing options, calling the library and rendering its result."""

from alexnet_deploy.cli.app import app, main, run

__all__ = ["app", "main", "run"]
