"""UGEM: the unified e-mail gateway of "electronic government".

Two floors of the house live here, apart (ARCHITECTURE.md):

- `ugem.core`, the foundation: configuration, the data model, errors, the
  clock, logs, metrics, events, the registry and its stores, the calendar,
  notices and the operators' services. It imports none of the floors above.
- the roof, the rest of this package: the node (`ugem.node`, `ugem serve`),
  the supervisor of workers, the CLI and its commands, and the adapters
  (`ugem.adapters`) that bind the services to the relay's spool and
  scheduler. It wires `relay`, `anomaly` and `admin` together; nothing
  imports it.

The floors are contracts of import-linter (pyproject.toml), checked by the
tests.
"""

__version__ = "0.1.0"
