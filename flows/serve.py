"""Deployments with cron schedules (a refresh and a nightly evaluation by default), and event triggers that
evaluate a variant on its own tasks when its index is built in the served data dir. Schedules need a Prefect server
(``prefect server start``).

Deployments point at the installed package by module path (``flows.refresh.refresh``), not at a file relative to the
directory ``reread serve`` started in, and every path in the schedule config is made absolute (relative to the config
file) when it is loaded: a served run finds the same flows and files whatever its working directory."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from catalog.errors import ConfigError, RereadError
from sample_data import VARIANTS_DIR


class RefreshSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str = "0 3 * * *"  # 03:00 daily
    variants: list[str] = Field(default_factory=lambda: [str(VARIANTS_DIR / "sample.yaml")])


class EvaluationSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str = "0 4 * * *"  # 04:00 nightly, after the refresh
    variants: list[str] = Field(
        default_factory=lambda: [str(VARIANTS_DIR / "vaswani.yaml"), str(VARIANTS_DIR / "vaswani-hnsw.yaml")]
    )
    tasks: list[str] = Field(default_factory=lambda: ["vaswani"])
    # Variant name -> the tasks to evaluate it on whenever its index is (re)built in the served data dir. A variant
    # not named here triggers nothing: a corpus is scored only on tasks that fit it.
    on_index_built: dict[str, list[str]] = Field(
        default_factory=lambda: {"vaswani": ["vaswani"], "vaswani-hnsw": ["vaswani"]}
    )


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_dir: str = Field(default_factory=lambda: os.environ.get("REREAD_DATA_DIR", "reread-data"))
    timezone: str = "UTC"
    # The task runner of the served refreshes' builds (see flows/runtime.py), as `reread build --runner` takes it.
    runner: str = "threads"
    workers: int | None = None
    address: str | None = None  # a running Dask/Ray cluster for runner dask/ray (tcp://HOST:8786, ray://HOST:10001)
    # Served runs at a time. One by default: they all write the data dir's catalog, which has one writer at a time
    # (a second run would only wait for the lock), and a cron that fires while a long refresh runs must not stack up.
    concurrent_runs: int = Field(default=1, ge=1)
    refresh: RefreshSchedule = RefreshSchedule()
    evaluation: EvaluationSchedule = EvaluationSchedule()

    @field_validator("runner")
    @classmethod
    def _known_runner(cls, name: str) -> str:
        from flows.runtime import TASK_RUNNERS

        if name not in TASK_RUNNERS:
            raise ValueError(f"unknown task runner {name!r}; choose one of: {', '.join(TASK_RUNNERS)}")
        return name

    def resolved(self, base: Path) -> ServeConfig:
        """This config with its data dir and variant files made absolute against ``base`` (a variant may also be a
        bundled variant's name, as on the command line); a variant that is neither is a ``ConfigError`` now, not
        when its schedule fires."""
        from sample_data import bundled_variant, bundled_variant_names

        def variant_file(value: str) -> str:
            path = base / value
            if path.is_file():
                return str(path.resolve())
            bundled = bundled_variant(value) if Path(value).suffix == "" and len(Path(value).parts) == 1 else None
            if bundled is None:
                known = ", ".join(bundled_variant_names())
                raise ConfigError(f"variant {value!r}: no file {path}, and not a bundled variant ({known})")
            return str(bundled)

        return self.model_copy(
            update={
                "data_dir": str((base / self.data_dir).resolve()),
                "refresh": self.refresh.model_copy(
                    update={"variants": [variant_file(v) for v in self.refresh.variants]}
                ),
                "evaluation": self.evaluation.model_copy(
                    update={"variants": [variant_file(v) for v in self.evaluation.variants]}
                ),
            }
        )


def load_serve_config(path: Path | None, **overrides) -> ServeConfig:
    """The schedule config of ``path`` (its relative paths taken relative to the file), or the defaults (relative
    to the working directory); ``overrides`` (``runner=``, ``workers=``: the command line's) replace its values."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if path is None:
        try:
            return ServeConfig.model_validate(overrides).resolved(Path.cwd())
        except ValidationError as exc:
            raise ConfigError(f"invalid serve options: {exc}") from None
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        if not isinstance(raw, dict):
            raise ConfigError(f"{path}: a schedule config is a mapping, not {type(raw).__name__}")
        return ServeConfig.model_validate(raw | overrides).resolved(Path(path).resolve().parent)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read schedule config ({exc})") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid schedule config: {exc}") from None


def make_deployments(config: ServeConfig) -> list:
    """The Prefect deployments ``reread serve`` serves (built, not yet served: testable without a server). The
    config's paths must be absolute (``load_serve_config`` makes them so)."""
    from prefect.deployments.runner import EntrypointType
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron

    from flows.build import INDEX_BUILT_EVENT
    from flows.evaluate import compare_variants, evaluate
    from flows.refresh import refresh

    installed = {"entrypoint_type": EntrypointType.MODULE_PATH}  # cwd-independent: the flow's import path
    data_dir = config.data_dir
    deployments = [
        refresh.to_deployment(
            name=f"refresh-{Path(v).stem}",
            schedules=[Cron(config.refresh.cron, timezone=config.timezone)],
            parameters={
                "variant_path": v,
                "data_dir": data_dir,
                "runner": config.runner,
                "workers": config.workers,
                "address": config.address,
            },  # fmt: skip
            **installed,
        )
        for v in config.refresh.variants
    ]
    ev = config.evaluation
    deployments += [
        compare_variants.to_deployment(
            name=f"nightly-{task}",
            schedules=[Cron(ev.cron, timezone=config.timezone)],
            parameters={"variant_paths": ev.variants, "data_dir": data_dir, "task_ref": task},
            **installed,
        )
        for task in ev.tasks
    ]
    deployments += [
        evaluate.to_deployment(
            name=f"evaluate-{variant}-on-index-built",
            triggers=[
                DeploymentEventTrigger(
                    expect={INDEX_BUILT_EVENT},
                    # this variant's index, built into the data dir this server serves (not any build anywhere)
                    match={"prefect.resource.id": f"reread.variant.{variant}", "reread.data-dir": data_dir},
                    parameters={
                        "variant_path": "{{ event.resource['reread.variant-path'] }}",
                        "data_dir": data_dir,
                        "tasks": tasks,
                    },
                )
            ],
            **installed,
        )
        for variant, tasks in ev.on_index_built.items()
    ]
    return deployments


def serve(config: ServeConfig) -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise RereadError(
            "reread serve runs schedules, which need a Prefect server: start one with `prefect server start` and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from prefect import serve as prefect_serve

    # pause_on_shutdown=False: else the schedules stay paused after a restart
    prefect_serve(*make_deployments(config), pause_on_shutdown=False, limit=config.concurrent_runs)
