"""The dashboard (issue #26): a static site drawn from a results store, with one trend page per
configuration, machine class (CPU class and CPU model) and model (throughput, latency and
fidelity over commits, the gate's verdicts and the detected change points marked) and an index
of every configuration's latest run against the one before it. Plotly writes the figures; its
one script is copied into the site, so the pages open from a file or any static host with no
network.

``trends.py`` reads the store into typed trends; ``figures.py`` draws them; ``pages.py`` lays
out the HTML; ``site.py`` writes the site atomically (:func:`write_dashboard`, what the
``dashboard`` command calls); ``browser.py`` opens a written site in a real headless browser
(the tests' and ``scripts/dashboard-demo``'s check).
"""

from __future__ import annotations
