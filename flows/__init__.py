"""Prefect flows, deployments and the ``reread`` CLI: orchestration only; the work is in the library packages.

Importing this package changes no environment variable and imports no Prefect: the CLI sets its process environment
(``flows.runtime.offline_defaults``) before a command runs, and each command imports what it needs."""
