"""The results store: every run of bench, tune, gate --run and plan kept across commits and
machines, in one SQLite file (the embedded default) or on a PostgreSQL server (docs/store.md).

``records.py``: the typed records; ``schema.py``: the tables, version and migrations;
``connect.py``: an engine from ``--store``'s value, and ``probe_store``; ``db.py``: ``open_store``
and ``Store``; ``from_report.py``/``from_plan.py``: runs made from reports and plans, and
``--store``'s value; ``importing.py``: ``store import``; ``failures.py``: what a failure says.
URL passwords are masked by ``alexnet_deploy/passwords.py``."""
