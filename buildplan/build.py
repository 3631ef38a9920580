"""The build plan of a datastore: sources -> extract -> decontaminate -> dedup -> chunk -> embed -> index.

Each stage is a list of independent units (one per source, per document shard, per chunk part), each with its
content-addressed key (stage, stage version, effective config, input manifests); an executor runs a stage's units
and the build registers what they made in the catalog, from its own process (the single writer). A unit whose
artifact exists returns it without work, so a re-run skips finished units and a killed run redoes only unfinished
ones. A rebuild after a source change reuses the variant's earlier work (``PreviousDatastore`` and the earlier
outputs of each shard): only new or changed documents are extracted, scanned, chunked and embedded. A variant's first
build takes the vectors of chunk texts it shares with another variant's datastore (``vectors_of_another_variant``).

``build(variant, data_dir)`` is the plain Python entry point; ``flows/build.py`` runs the same ``Build`` with an
executor that submits each unit as a Prefect task, so both give the same artifact keys and index.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property, partial
from pathlib import Path

from buildplan.executors import Executor, LocalExecutor
from buildplan.questions import load_questions
from buildplan.units import Unit, UnitResult
from catalog.artifacts import ArtifactManifest, ArtifactStore, inputs_hash
from catalog.db import Catalog
from catalog.hashing import combine_hashes
from catalog.stage_runner import StageSpec, register_artifact
from catalog.variant import SourceConfig, Variant, load_variant
from extract.sources import open_source
from extract.stage import EXTRACT_STAGE_VERSION, run_extract, source_fingerprint
from indexing import stages
from indexing.decontaminate import BenchmarkQuestions


@dataclass
class StageRun:
    """One unit's outcome as the build summary shows it."""

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


def stage_spec(variant: Variant, stage: str, inputs: list[ArtifactManifest], shard: str = "") -> StageSpec:
    """The cache identity of an indexing stage's output: its version, its effective config, its inputs."""
    return StageSpec(stage, stages.STAGE_VERSIONS[stage], variant.stage_hash(stage), inputs_hash(inputs), shard)


def earlier_outputs(
    catalog: Catalog, variant: Variant, stage: str, data_dir: str, shard: str = ""
) -> Iterator[ArtifactManifest]:
    """The variant's earlier outputs of ``stage`` (for ``shard``) under the stage's current config and version, newest
    first: work a rebuild can reuse. The catalog is read now (before this build registers anything of its own);
    artifact folders as the caller iterates."""
    version = EXTRACT_STAGE_VERSION if stage == "extract" else stages.STAGE_VERSIONS[stage]
    keys = catalog.stage_output_keys(variant.name, stage, version, variant.stage_hash(stage), shard)
    store = ArtifactStore(data_dir)
    return (m for m in (store.find(stage, key) for key in keys) if m is not None)


# A donor's chunk texts are streamed and hashed by each embed unit that reads it: worth it while the donor has at most
# this many times the part's chunks (hashing a chunk text takes microseconds, embedding it with MiniLM about 50 ms on
# the 2-core machine, benchmarks/embed.py: 18-20 chunks/s; a GPU narrows that margin, hence a ratio far below it).
DONOR_SCAN_MAX_RATIO = 100


@dataclass(frozen=True)
class PreviousDatastore:
    """The artifacts of the variant's datastore as it was before this build (read once, at its start): what a
    rebuild after a source change can reuse, each part only when it was made under the current stage config."""

    chunks: list[ArtifactManifest]
    embed: list[ArtifactManifest]  # those still intact (one per chunk part; one for every part before embed 2)
    index: ArtifactManifest | None

    @classmethod
    def load(cls, catalog: Catalog, variant_name: str, data_dir: str) -> PreviousDatastore | None:
        record = catalog.datastore(variant_name)
        if record is None:
            return None
        store = ArtifactStore(data_dir)
        chunks = [store.find("chunk", key) for key in record["chunk_keys"]]
        if not chunks or any(c is None for c in chunks):
            return None
        embed = [m for m in (store.find("embed", key) for key in record["embed_keys"]) if m is not None]
        return cls(chunks, embed, store.find("index", record["index_key"]))

    def chunking(
        self, catalog: Catalog, variant: Variant, data_dir: str
    ) -> tuple[ArtifactManifest, list[ArtifactManifest]] | None:
        """The chunk artifacts with the dedup output they were chunked from (the one whose manifest hash is their
        input hash): a rebuild then chunks only new or changed documents."""
        current = (variant.stage_hash("chunk"), stages.STAGE_VERSIONS["chunk"])
        if any((c.config_hash, c.stage_version) != current for c in self.chunks):
            return None
        made_from = {c.input_hash for c in self.chunks}  # every part was chunked from one dedup output
        outputs = earlier_outputs(catalog, variant, "dedup", data_dir)
        docs = next((d for d in outputs if {inputs_hash([d])} == made_from), None)
        return (docs, self.chunks) if docs is not None else None

    def embedding(self, variant: Variant) -> tuple[list[ArtifactManifest], list[ArtifactManifest]] | None:
        """The chunk and embedding artifacts (those of the current embed config): a rebuild embeds only new or
        changed chunk texts."""
        embed = [m for m in self.embed if m.config_hash == variant.stage_hash("embed")]
        return (self.chunks, embed) if embed else None

    def donated(
        self, variant: Variant, part: ArtifactManifest
    ) -> tuple[list[ArtifactManifest], list[ArtifactManifest]] | None:
        """``embedding`` as another variant's donor (``vectors_of_another_variant``) to one chunk part: only when the
        donor is small enough beside the part for its texts to be worth scanning."""
        if sum(m.rows for m in self.chunks) > DONOR_SCAN_MAX_RATIO * part.rows:
            return None
        return self.embedding(variant)

    def index_to_update(self, variant: Variant) -> ArtifactManifest | None:
        """The index, when it has the current index config: a refresh updates it in place."""
        if self.index is None or self.index.config_hash != variant.stage_hash("index"):
            return None
        return self.index


def vectors_of_another_variant(catalog: Catalog, variant: Variant, data_dir: str) -> PreviousDatastore | None:
    """The datastore of the most recently built other variant embedded under this variant's embed config: a variant
    whose own datastore has no vectors to give (none yet, or made with another embedder config) takes that one's
    vectors for the chunk texts they share (corpus variants compared side by side share most of their texts). One donor only: a vector is looked up by the chunk id it was stored
    under, and chunk ids are unique within a datastore, not across variants."""
    for name in catalog.datastore_variants():
        if name != variant.name:
            other = PreviousDatastore.load(catalog, name, data_dir)
            if other is not None and other.embedding(variant) is not None:
                return other
    return None


# ---------------------------------------------------------------- units per stage
def extract_units(
    variant: Variant, source: SourceConfig, earlier: Callable[[str], ArtifactManifest | None]
) -> list[Unit]:
    """A source's extract units: one per shard of its files (``Source.shards``: a file, a line-aligned byte span of
    a large JSONL file, or a group of one-document files), or one for the whole source, named after it, when it has
    a single shard. ``earlier(shard)`` is the shard's last extraction under this config: documents whose bytes are
    unchanged reuse its text."""
    groups = open_source(source).shards(variant.sharding.max_bytes_per_unit)
    named = [(source.name, None)] if len(groups) == 1 else [(f"{source.name}/{g[0]}", g) for g in groups]
    config_hash = variant.stage_hash("extract")
    return [
        Unit(
            StageSpec("extract", EXTRACT_STAGE_VERSION, config_hash, source_fingerprint(source, files), shard),
            variant,
            run_extract,
            {"source_name": source.name, "previous": earlier(shard), "files": files},
            progress_arg="on_progress",
        )
        for shard, files in named
    ]


def decontaminate_unit(
    variant: Variant,
    docs: ArtifactManifest,
    previous: ArtifactManifest | None,
    questions: tuple[BenchmarkQuestions, ...],
) -> Unit:
    """One shard's documents; with ``previous`` (the shard's last decontamination under this config) documents it
    kept are not scanned again. The output equals a full run's, so its key is the plain one."""
    spec = stage_spec(variant, "decontaminate", [docs], docs.shard)
    inputs = {"docs_in": docs, "previous": previous, "questions": questions}
    return Unit(spec, variant, stages.run_decontaminate, inputs)


def dedup_signatures_unit(variant: Variant, docs: ArtifactManifest) -> Unit:
    """One shard's exact keys, MinHash signatures and LSH band buckets."""
    spec = stage_spec(variant, "dedup_signatures", [docs], docs.shard)
    return Unit(spec, variant, stages.run_dedup_signatures, {"docs_in": docs}, progress_arg="on_progress")


def dedup_unit(variant: Variant, docs: list[ArtifactManifest], signatures: list[ArtifactManifest]) -> Unit:
    """Duplicates across all shards from their signatures (out of core), and every shard's kept documents."""
    spec = stage_spec(variant, "dedup", docs)
    inputs = {"docs_in": docs, "signatures_in": signatures}
    return Unit(spec, variant, stages.run_dedup, inputs, progress_arg="on_progress")


def chunk_unit(
    variant: Variant,
    docs: ArtifactManifest,
    part: str,
    previous: tuple[ArtifactManifest, list[ArtifactManifest]] | None,
    questions: tuple[BenchmarkQuestions, ...] = (),
) -> Unit:
    """One part of the documents; with ``previous`` (see ``PreviousDatastore.chunking``) unchanged documents take
    their earlier chunks. The output equals a full run's, so its key is the plain one. ``questions``: what
    ``drop_chunk`` decontamination scans for."""
    spec = stage_spec(variant, "chunk", [docs], part)
    inputs = {"docs_in": docs, "part": part, "previous": previous, "questions": questions}
    return Unit(spec, variant, stages.run_chunk, inputs, progress_arg="on_progress")


def embed_unit(
    variant: Variant,
    chunks: ArtifactManifest,
    previous: tuple[list[ArtifactManifest], list[ArtifactManifest]] | None,
) -> Unit:
    """One chunk part's embeddings, named after the part. Keyed by what it embeds (the part's chunk ids and texts,
    ``chunks.content_hash``), not by the chunk artifact's key, which changes with every document of the variant: a
    rebuild then finds the embeddings of every part whose chunks are unchanged, and embeds the others with
    ``previous`` (see ``PreviousDatastore.embedding``) reusing the vectors of unchanged chunk texts."""
    spec = StageSpec(
        "embed", stages.STAGE_VERSIONS["embed"], variant.stage_hash("embed"), chunks.content_hash, chunks.shard
    )
    inputs = {"chunks_in": chunks, "previous": previous}
    return Unit(spec, variant, stages.run_embed, inputs, progress_arg="on_rows")


def index_unit(
    variant: Variant, data_dir: str, embeddings: list[ArtifactManifest], previous: ArtifactManifest | None
) -> Unit | ArtifactManifest:
    """Index the embeddings of every chunk part; with ``previous`` (the current datastore's index) update it instead
    of building anew.

    The previous index is then an input of the new one (its key includes it). When ``previous`` was made from these
    very embeddings (a refresh that changed nothing) it is the answer (returned instead of a unit), and a full build
    of them is used if one exists.
    """
    if previous is not None and previous.stats.get("embeddings_keys") == [m.key for m in embeddings]:
        return previous
    spec = stage_spec(variant, "index", embeddings)
    if previous is not None and ArtifactStore(data_dir).find("index", spec.key) is None:
        spec = stage_spec(variant, "index", [*embeddings, previous])
    else:
        previous = None
    return Unit(spec, variant, stages.run_index, {"embed_in": embeddings, "previous": previous})


# ---------------------------------------------------------------- the build
class Build:
    """One build of a variant into a data dir: each stage's units run by ``executor``, registered in ``catalog``
    (open read-write in this process) under ``run_id``. ``on_reuse`` is told of artifacts taken without running a
    unit (an index already of these embeddings)."""

    def __init__(
        self,
        variant: Variant,
        data_dir: str,
        catalog: Catalog,
        run_id: str,
        executor: Executor,
        on_reuse: Callable[[ArtifactManifest, str], None] | None = None,
    ):
        self.variant, self.data_dir, self.catalog, self.run_id = variant, data_dir, catalog, run_id
        self.executor = executor
        self.on_reuse = on_reuse
        self.runs: list[StageRun] = []

    def _earlier(self, stage: str, shard: str = "") -> ArtifactManifest | None:
        return next(earlier_outputs(self.catalog, self.variant, stage, self.data_dir, shard), None)

    def _run(self, units: Sequence[Unit | ArtifactManifest]) -> list[ArtifactManifest]:
        """Run the units (artifacts given instead of units are taken as they are), register every artifact."""
        results: Iterator[UnitResult] = iter(
            self.executor.map([u for u in units if isinstance(u, Unit)], self.data_dir)
        )
        manifests = []
        for unit in units:
            if isinstance(unit, Unit):
                manifest, cached = next(results)
            else:
                manifest, cached = unit, True
                if self.on_reuse is not None:
                    self.on_reuse(manifest, self.variant.name)
            register_artifact(self.catalog, manifest, self.variant.name, self.run_id)
            self.runs.append(
                StageRun(manifest.stage, manifest.shard, manifest.key, cached, manifest.rows, manifest.stats)
            )
            manifests.append(manifest)
        return manifests

    def extract(self) -> list[ArtifactManifest]:
        """The extract units of every source; registers each source with the content fingerprint it was read at
        (of its shards, when it was split)."""
        units = [extract_units(self.variant, s, partial(self._earlier, "extract")) for s in self.variant.sources]
        manifests = self._run([u for source_units in units for u in source_units])
        done = iter(manifests)
        for source, source_units in zip(self.variant.sources, units, strict=True):
            parts = [next(done) for _ in source_units]
            fingerprint = parts[0].input_hash if len(parts) == 1 else combine_hashes(m.input_hash for m in parts)
            self.catalog.register_source(
                self.variant.name, source.name, source.type, str(source.path), parts[0].config_hash, fingerprint
            )
        return manifests

    @cached_property
    def questions(self) -> tuple[BenchmarkQuestions, ...]:
        """The configured benchmarks' questions, loaded once here and handed to the units that scan for them."""
        return load_questions(self.variant.decontamination)

    def _questions_for(self, action: str) -> tuple[BenchmarkQuestions, ...]:
        return self.questions if self.variant.decontamination.action == action else ()

    def decontaminate(self, extracted: list[ArtifactManifest]) -> list[ArtifactManifest]:
        questions = self._questions_for("drop_document")
        return self._run(
            [decontaminate_unit(self.variant, m, self._earlier("decontaminate", m.shard), questions) for m in extracted]
        )

    def dedup(self, clean: list[ArtifactManifest]) -> ArtifactManifest:
        """Per-shard signatures (in parallel), then the cross-shard dedup."""
        signatures = self._run([dedup_signatures_unit(self.variant, m) for m in clean])
        (deduped,) = self._run([dedup_unit(self.variant, clean, signatures)])
        return deduped

    def chunk(
        self, deduped: ArtifactManifest, previous: tuple[ArtifactManifest, list[ArtifactManifest]] | None = None
    ) -> list[ArtifactManifest]:
        questions = self._questions_for("drop_chunk")
        return self._run([chunk_unit(self.variant, deduped, part, previous, questions) for part in deduped.files])

    def run(self) -> BuildSummary:
        """The stage graph: fan out per source shard, document shard and chunk part; fan in for dedup and index."""
        variant = self.variant
        previous = PreviousDatastore.load(self.catalog, variant.name, self.data_dir)
        clean = self.decontaminate(self.extract())
        previous_chunking = previous.chunking(self.catalog, variant, self.data_dir) if previous else None
        chunks = self.chunk(self.dedup(clean), previous_chunking)
        reusable = previous.embedding(variant) if previous else None
        donor = None if reusable else vectors_of_another_variant(self.catalog, variant, self.data_dir)
        embedded = self._run(
            [embed_unit(variant, part, donor.donated(variant, part) if donor else reusable) for part in chunks]
        )
        previous_index = previous.index_to_update(variant) if previous else None
        (index,) = self._run([index_unit(variant, self.data_dir, embedded, previous_index)])
        self.catalog.register_datastore(
            variant.name, str(variant.path), index.key, [m.key for m in chunks], [m.key for m in embedded], self.run_id
        )
        return BuildSummary(variant.name, self.run_id, index.key, self.runs)


def build(
    variant: Variant | str | Path,
    data_dir: str | Path,
    executor: Executor | None = None,
    on_reuse: Callable[[ArtifactManifest, str], None] | None = None,
    before_run: Callable[[Catalog], object] | None = None,
    flow_run_id: str | None = None,
) -> BuildSummary:
    """Build (or bring up to date) a variant's datastore in ``data_dir``: the units run on ``executor`` (default:
    in this process, no orchestrator needed) and the run is recorded in the catalog (``before_run`` is called with
    it first; ``flow_run_id``: the orchestrator's run this one belongs to)."""
    if not isinstance(variant, Variant):
        variant = load_variant(variant)
    data_dir = str(Path(data_dir).resolve())
    with Catalog.in_data_dir(data_dir) as catalog:
        if before_run is not None:
            before_run(catalog)
        run_id = catalog.start_run(variant.name, "build", flow_run_id=flow_run_id)
        try:
            summary = Build(variant, data_dir, catalog, run_id, executor or LocalExecutor(), on_reuse).run()
        except BaseException as exc:
            catalog.finish_run(run_id, "failed", {"error": str(exc)})
            raise
        catalog.finish_run(run_id, "completed", {"executed": summary.executed, "index_key": summary.index_key})
    return summary
