"""Deployments with cron schedules (a refresh and a nightly evaluation by default), and an event trigger that
evaluates a variant when its index is built. Schedules need a Prefect server (``prefect server start``)."""

from __future__ import annotations

import os
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from catalog.errors import ConfigError, RereadError


class RefreshSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str = "0 3 * * *"  # 03:00 daily
    variants: list[str] = Field(default_factory=lambda: ["sample_data/variants/sample.yaml"])


class EvaluationSchedule(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cron: str = "0 4 * * *"  # 04:00 nightly, after the refresh
    variants: list[str] = Field(
        default_factory=lambda: [
            "sample_data/variants/vaswani.yaml",
            "sample_data/variants/vaswani-hnsw.yaml",
        ]
    )
    tasks: list[str] = Field(default_factory=lambda: ["vaswani"])
    on_index_built: bool = True  # also evaluate a variant whenever its index is (re)built
    on_index_built_tasks: list[str] = Field(default_factory=lambda: ["vaswani"])


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    data_dir: str = "reread-data"
    timezone: str = "UTC"
    refresh: RefreshSchedule = RefreshSchedule()
    evaluation: EvaluationSchedule = EvaluationSchedule()


def load_serve_config(path: Path | None) -> ServeConfig:
    if path is None:
        return ServeConfig()
    try:
        raw = yaml.safe_load(Path(path).read_text()) or {}
        return ServeConfig.model_validate(raw)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read schedule config ({exc})") from None
    except (yaml.YAMLError, ValidationError) as exc:
        raise ConfigError(f"{path}: invalid schedule config: {exc}") from None


def make_deployments(config: ServeConfig) -> list:
    """The Prefect deployments ``reread serve`` serves (built, not yet served: testable without a server)."""
    from prefect.events import DeploymentEventTrigger
    from prefect.schedules import Cron

    from flows.build import INDEX_BUILT_EVENT
    from flows.evaluate import compare_variants, evaluate
    from flows.refresh import refresh

    data_dir = str(Path(config.data_dir).resolve())
    deployments = [
        refresh.to_deployment(
            name=f"refresh-{Path(v).stem}",
            schedules=[Cron(config.refresh.cron, timezone=config.timezone)],
            parameters={"variant_path": str(Path(v).resolve()), "data_dir": data_dir},
        )
        for v in config.refresh.variants
    ]
    ev = config.evaluation
    deployments += [
        compare_variants.to_deployment(
            name=f"nightly-{task}",
            schedules=[Cron(ev.cron, timezone=config.timezone)],
            parameters={
                "variant_paths": [str(Path(v).resolve()) for v in ev.variants],
                "data_dir": data_dir,
                "task_ref": task,
            },
        )  # fmt: skip
        for task in ev.tasks
    ]
    if ev.on_index_built:
        deployments.append(
            evaluate.to_deployment(
                name="evaluate-on-index-built",
                triggers=[
                    DeploymentEventTrigger(
                        expect={INDEX_BUILT_EVENT},
                        match={"prefect.resource.id": "reread.variant.*"},
                        parameters={
                            "variant_path": "{{ event.resource['reread.variant-path'] }}",
                            "data_dir": "{{ event.payload.data_dir }}",
                            "tasks": ev.on_index_built_tasks,
                        },
                    )
                ],
            )
        )
    return deployments


def serve(config: ServeConfig) -> None:
    if not os.environ.get("PREFECT_API_URL"):
        raise RereadError(
            "reread serve runs schedules, which need a Prefect server: start one with `prefect server start` and "
            "export PREFECT_API_URL=http://127.0.0.1:4200/api"
        )
    from prefect import serve as prefect_serve

    prefect_serve(*make_deployments(config), pause_on_shutdown=False)  # else schedules stay paused after a restart
