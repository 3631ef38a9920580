"""The build plan of a datastore, apart from whatever executes it: units of work with content-addressed keys
(``buildplan.units``), executors that run them (``buildplan.executors``: in-process, Dask, Ray) and the stage graph
with its reuse rules (``buildplan.build``). Never imports Prefect: ``flows/build.py`` submits the same units as
Prefect tasks."""
