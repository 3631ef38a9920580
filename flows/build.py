"""``build_datastore``: sources -> extract -> decontaminate -> dedup -> chunk -> embed -> index, as Prefect tasks.

Tasks pass small ``ArtifactManifest``s (paths, hashes, counts), one task per source or document part. Each task first
looks up its content-addressed artifact (stage, stage version, config hash, input-manifest hash) and returns it without
work when it exists, so re-runs in the same or a new flow run skip finished stages, and a killed run resumes. Only the
flow itself writes the catalog (the single writer), whatever task runner executes the tasks.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, create_table_artifact, update_progress_artifact
from prefect.events import emit_event

from catalog.artifacts import ArtifactManifest, ArtifactStore, StageResult, inputs_hash
from catalog.db import Catalog
from catalog.stage_runner import StageSpec, execute_stage, register_artifact, rejection_counts
from catalog.variant import Variant, load_variant
from extract.stage import EXTRACT_STAGE_VERSION, run_extract, source_fingerprint
from flows.reports import stage_table_rows
from flows.runtime import (
    artifact_key_name,
    current_flow_run_id,
    record_interrupted_runs,
    retry_condition,
    run_flow_with_runner,
)
from indexing import stages

INDEX_BUILT_EVENT = "reread.index.built"


@dataclass
class StageRun:
    """One task's outcome as the build summary shows it."""

    stage: str
    shard: str
    key: str
    cached: bool
    rows: int
    stats: dict = field(default_factory=dict)


@dataclass
class BuildSummary:
    variant: str
    run_id: str
    index_key: str
    stages: list[StageRun]

    @property
    def executed(self) -> list[str]:
        return [f"{s.stage}:{s.shard}" if s.shard else s.stage for s in self.stages if not s.cached]

    def as_dict(self) -> dict:
        return {
            "variant": self.variant,
            "run_id": self.run_id,
            "index_key": self.index_key,
            "stages": [vars(s) for s in self.stages],
        }


def _publish_stage_table(manifest: ArtifactManifest, variant: str, cached: bool) -> None:
    create_table_artifact(
        key=artifact_key_name(f"{variant}-{manifest.stage}-{manifest.shard or 'all'}"),
        table=stage_table_rows(manifest, cached),
        description=f"{manifest.stage} {manifest.shard} of {variant} (artifact {manifest.key})",
    )


def _run(data_dir: str, variant: Variant, spec: StageSpec, fn) -> tuple[ArtifactManifest, bool]:
    manifest, cached = execute_stage(ArtifactStore(data_dir), spec, fn)
    get_run_logger().info(
        "%s %s: %s (%d rows)", spec.stage, spec.shard or "", "cached" if cached else "done", manifest.rows
    )
    _publish_stage_table(manifest, variant.name, cached)
    return manifest, cached


def _spec(variant: Variant, stage: str, inputs: list[ArtifactManifest], shard: str = "") -> StageSpec:
    """The cache identity of an indexing stage's output: its version, its effective config, its inputs."""
    return StageSpec(stage, stages.STAGE_VERSIONS[stage], variant.stage_hash(stage), inputs_hash(inputs), shard)


# ---------------------------------------------------------------- tasks (module-level: picklable for Dask/processes)
@task(
    name="extract",
    task_run_name="extract-{source}",
    retries=2,
    retry_delay_seconds=[2, 10],
    retry_condition_fn=retry_condition,
)
def extract_task(
    variant: Variant, source: str, data_dir: str, previous: ArtifactManifest | None = None
) -> tuple[ArtifactManifest, bool]:
    cfg = next(s for s in variant.sources if s.name == source)
    spec = StageSpec("extract", EXTRACT_STAGE_VERSION, variant.stage_hash("extract"), source_fingerprint(cfg), source)
    return _run(data_dir, variant, spec, lambda out: run_extract(variant, source, out, previous=previous))


def _previous_outputs(
    catalog: Catalog, variant: Variant, stage: str, data_dir: str, shard: str = ""
) -> Iterator[ArtifactManifest]:
    """The variant's earlier outputs of ``stage`` (for ``shard``) under the stage's current config and version, newest
    first: work a rebuild can reuse. The catalog is read now (before this run registers anything of its own);
    artifact folders as the caller iterates."""
    version = EXTRACT_STAGE_VERSION if stage == "extract" else stages.STAGE_VERSIONS[stage]
    keys = catalog.query(
        "SELECT artifact_key FROM stage_outputs WHERE stage = ? AND variant = ? AND shard = ? AND config_hash = ?"
        " AND stage_version = ? ORDER BY created_at DESC",
        [stage, variant.name, shard, variant.stage_hash(stage), version],
    )["artifact_key"].to_list()
    store = ArtifactStore(data_dir)
    return (m for m in (store.find(stage, key) for key in keys) if m is not None)


@task(
    name="decontaminate",
    task_run_name="decontaminate-{docs.shard}",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_condition,
)
def decontaminate_task(
    variant: Variant, docs: ArtifactManifest, data_dir: str, previous: ArtifactManifest | None = None
) -> tuple[ArtifactManifest, bool]:
    """Decontaminate one source's documents; with ``previous`` (the source's last decontamination under this config)
    documents it kept are not scanned again. The output equals a full run's, so its key is the plain one."""
    spec = _spec(variant, "decontaminate", [docs], docs.shard)
    return _run(data_dir, variant, spec, lambda out: stages.run_decontaminate(variant, docs, out, previous))


@task(
    name="dedup",
    task_run_name="dedup-{variant.name}",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_condition,
)
def dedup_task(variant: Variant, docs: list[ArtifactManifest], data_dir: str) -> tuple[ArtifactManifest, bool]:
    spec = _spec(variant, "dedup", docs)
    return _run(data_dir, variant, spec, lambda out: stages.run_dedup(variant, docs, out))


@task(name="chunk", task_run_name="chunk-{part}", retries=1, retry_delay_seconds=5, retry_condition_fn=retry_condition)
def chunk_task(
    variant: Variant,
    docs: ArtifactManifest,
    part: str,
    data_dir: str,
    previous: tuple[ArtifactManifest, list[ArtifactManifest]] | None = None,
) -> tuple[ArtifactManifest, bool]:
    """Chunk one part of the documents; with ``previous`` (see ``PreviousDatastore.chunking``) unchanged documents take
    their earlier chunks. The output equals a full run's, so its key is the plain one."""
    spec = _spec(variant, "chunk", [docs], part)
    return _run(data_dir, variant, spec, lambda out: stages.run_chunk(variant, docs, part, out, previous))


@task(
    name="embed",
    task_run_name="embed-{variant.name}",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_condition,
)
def embed_task(
    variant: Variant, chunks: list[ArtifactManifest], data_dir: str, previous=None
) -> tuple[ArtifactManifest, bool]:
    spec = _spec(variant, "embed", chunks)
    total = sum(m.rows for m in chunks)

    def embed(out: Path) -> StageResult:
        progress_id = create_progress_artifact(
            progress=0.0,
            key=artifact_key_name(f"{variant.name}-embed-progress"),
            description=f"embedding {total} chunks of {variant.name}",
        )
        done = shown = 0

        def on_rows(n: int) -> None:  # per batch; the artifact moves in steps of at least 1% (one API call each)
            nonlocal done, shown
            done += n
            if done - shown >= total / 100 or done >= total:
                shown = done
                update_progress_artifact(progress_id, progress=100.0 * done / max(total, 1))

        return stages.run_embed(variant, chunks, out, previous=previous, on_rows=on_rows)

    return _run(data_dir, variant, spec, embed)


@task(
    name="index",
    task_run_name="index-{variant.name}",
    retries=1,
    retry_delay_seconds=5,
    retry_condition_fn=retry_condition,
)
def index_task(
    variant: Variant, embeddings: ArtifactManifest, data_dir: str, previous: ArtifactManifest | None = None
) -> tuple[ArtifactManifest, bool]:
    """Index the embeddings; with ``previous`` (the current datastore's index) update it instead of building anew.

    The previous index is then an input of the new one (its key includes it). When ``previous`` was made from these
    very embeddings (a refresh that changed nothing) it is the answer, and a full build of them is used if one exists.
    """
    if previous is not None and previous.stats.get("embeddings_key") == embeddings.key:
        get_run_logger().info("index: the datastore's index %s is already of these embeddings", previous.key)
        _publish_stage_table(previous, variant.name, True)
        return previous, True
    spec = _spec(variant, "index", [embeddings])
    if previous is not None and ArtifactStore(data_dir).find("index", spec.key) is None:
        spec = _spec(variant, "index", [embeddings, previous])
    else:
        previous = None
    return _run(data_dir, variant, spec, lambda out: stages.run_index(variant, embeddings, out, previous))


# ---------------------------------------------------------------- the flow
def _register(catalog: Catalog, variant: Variant, run_id: str, results, log: list[StageRun]) -> list[ArtifactManifest]:
    manifests = []
    for manifest, cached in results:
        register_artifact(catalog, manifest, variant.name, run_id)
        log.append(StageRun(manifest.stage, manifest.shard, manifest.key, cached, manifest.rows, manifest.stats))
        manifests.append(manifest)
    return manifests


@dataclass(frozen=True)
class PreviousDatastore:
    """The artifacts of the variant's datastore as it was before this build (read once, at its start): what a
    rebuild after a source change can reuse, each part only when it was made under the current stage config."""

    chunks: list[ArtifactManifest]
    embed: ArtifactManifest | None
    index: ArtifactManifest | None

    @classmethod
    def load(cls, catalog: Catalog, variant: Variant, data_dir: str) -> PreviousDatastore | None:
        record = catalog.datastore(variant.name)
        if record is None:
            return None
        store = ArtifactStore(data_dir)
        chunks = [store.find("chunk", key) for key in record["chunk_keys"]]
        if not chunks or any(c is None for c in chunks):
            return None
        return cls(chunks, store.find("embed", record["embed_key"]), store.find("index", record["index_key"]))

    def chunking(
        self, catalog: Catalog, variant: Variant, data_dir: str
    ) -> tuple[ArtifactManifest, list[ArtifactManifest]] | None:
        """The chunk artifacts with the dedup output they were chunked from (the one whose manifest hash is their
        input hash): a rebuild then chunks only new or changed documents."""
        current = (variant.stage_hash("chunk"), stages.STAGE_VERSIONS["chunk"])
        if any((c.config_hash, c.stage_version) != current for c in self.chunks):
            return None
        made_from = {c.input_hash for c in self.chunks}  # every part was chunked from one dedup output
        outputs = _previous_outputs(catalog, variant, "dedup", data_dir)
        docs = next((d for d in outputs if {inputs_hash([d])} == made_from), None)
        return (docs, self.chunks) if docs is not None else None

    def embedding(self, variant: Variant) -> tuple[list[ArtifactManifest], ArtifactManifest] | None:
        """The chunk and embedding artifacts: a rebuild embeds only new or changed chunk texts."""
        if self.embed is None or self.embed.config_hash != variant.stage_hash("embed"):
            return None
        return self.chunks, self.embed

    def index_to_update(self, variant: Variant) -> ArtifactManifest | None:
        """The index, when it has the current index config: a refresh updates it in place."""
        if self.index is None or self.index.config_hash != variant.stage_hash("index"):
            return None
        return self.index


def _extract_sources(
    variant: Variant, data_dir: str, catalog: Catalog, run_id: str, log: list[StageRun]
) -> list[ArtifactManifest]:
    """One extract task per source (each reusing its last extraction's text for unchanged documents); registers
    the artifacts and the sources with the content fingerprint they were read at."""
    futures = [
        extract_task.submit(
            variant, s.name, data_dir, next(_previous_outputs(catalog, variant, "extract", data_dir, s.name), None)
        )
        for s in variant.sources
    ]
    manifests = _register(catalog, variant, run_id, [f.result() for f in futures], log)
    for source, manifest in zip(variant.sources, manifests, strict=True):
        catalog.register_source(
            variant.name, source.name, source.type, str(source.path), manifest.config_hash, manifest.input_hash
        )
    return manifests


def build_stages(variant: Variant, data_dir: str, catalog: Catalog, run_id: str) -> BuildSummary:
    """The stage graph, run inside a flow: fan out per source and per document part, fan in for dedup and embed."""
    log: list[StageRun] = []
    previous = PreviousDatastore.load(catalog, variant, data_dir)
    extracted = _extract_sources(variant, data_dir, catalog, run_id, log)
    clean_futures = [
        decontaminate_task.submit(
            variant, m, data_dir, next(_previous_outputs(catalog, variant, "decontaminate", data_dir, m.shard), None)
        )
        for m in extracted
    ]
    clean = _register(catalog, variant, run_id, [f.result() for f in clean_futures], log)
    previous_chunking = previous.chunking(catalog, variant, data_dir) if previous else None
    (deduped,) = _register(catalog, variant, run_id, [dedup_task(variant, clean, data_dir)], log)
    chunk_futures = [chunk_task.submit(variant, deduped, part, data_dir, previous_chunking) for part in deduped.files]
    chunks = _register(catalog, variant, run_id, [f.result() for f in chunk_futures], log)
    previous_embedding = previous.embedding(variant) if previous else None
    (embedded,) = _register(catalog, variant, run_id, [embed_task(variant, chunks, data_dir, previous_embedding)], log)
    previous_index = previous.index_to_update(variant) if previous else None
    (index,) = _register(catalog, variant, run_id, [index_task(variant, embedded, data_dir, previous_index)], log)
    catalog.register_datastore(
        variant.name, str(variant.path), index.key, [m.key for m in chunks], embedded.key, run_id
    )
    return BuildSummary(variant.name, run_id, index.key, log)


@flow(name="build-datastore", log_prints=True)
def build_datastore(variant_path: str, data_dir: str) -> dict:
    """Build (or bring up to date) the datastore of one corpus variant."""
    variant = load_variant(variant_path)
    stages.check_build_config(variant)  # before any extraction: a bad factory or embedder fails in seconds
    with Catalog.in_data_dir(data_dir) as catalog:
        record_interrupted_runs(catalog)
        run_id = catalog.start_run(variant.name, "build", flow_run_id=current_flow_run_id())
        try:
            summary = build_stages(variant, data_dir, catalog, run_id)
        except BaseException as exc:
            catalog.finish_run(run_id, "failed", {"error": str(exc)})
            raise
        catalog.finish_run(run_id, "completed", {"executed": summary.executed, "index_key": summary.index_key})
    if summary.executed:
        emit_event(
            event=INDEX_BUILT_EVENT,
            resource={
                "prefect.resource.id": f"reread.variant.{variant.name}",
                "reread.variant-path": str(Path(variant_path).resolve()),
                "reread.data-dir": str(Path(data_dir).resolve()),  # served triggers match their own data dir
            },
            payload={"index_key": summary.index_key, "data_dir": data_dir},
        )
    return summary.as_dict()


def run_build(variant_path: str | Path, data_dir: str | Path, runner: str = "threads", workers: int | None = None):
    return run_flow_with_runner(build_datastore, variant_path, data_dir, runner, workers)


@flow(name="ingest", log_prints=True)
def ingest(variant_path: str, data_dir: str) -> dict:
    """Read every source of a variant and extract its documents into the catalog (the first stage of a build)."""
    variant = load_variant(variant_path)
    with Catalog.in_data_dir(data_dir) as catalog:
        record_interrupted_runs(catalog)
        run_id = catalog.start_run(variant.name, "ingest", flow_run_id=current_flow_run_id())
        log: list[StageRun] = []
        manifests = _extract_sources(variant, data_dir, catalog, run_id, log)
        sources = []
        for manifest, entry in zip(manifests, log, strict=True):
            reasons = rejection_counts(manifest)
            sources.append(
                {
                    "source": manifest.shard,
                    "cached": entry.cached,
                    "read": manifest.stats.get("documents_read", 0),
                    "extracted": manifest.rows,
                    "rejected": sum(reasons.values()),
                    "rejections": reasons,
                    "artifact": manifest.key,
                }
            )
        catalog.finish_run(run_id, "completed", {"sources": sources})
    return {"variant": variant.name, "run_id": run_id, "sources": sources}


def run_ingest(variant_path: str | Path, data_dir: str | Path, runner: str = "threads", workers: int | None = None):
    return run_flow_with_runner(ingest, variant_path, data_dir, runner, workers)
