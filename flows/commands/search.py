"""reread search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from catalog.errors import RereadError
from flows.commands._common import DataDirOption, JsonOption, VariantArgument, console


def _hit_json(hit) -> dict:
    keys = ("chunk_id", "doc_id", "source_doc_id", "source", "url", "title", "score", "text")
    return {k: getattr(hit, k) for k in keys}


def hit_origin(hit) -> str:
    """Where a hit comes from, as its source names it: ``source:id`` (the id in the source, Reread's hashed doc_id
    only when the source gives none), then the URL when it is not that id."""
    ident = hit.source_doc_id or hit.doc_id
    return f"{hit.source}:{ident}" + (f" {hit.url}" if hit.url and hit.url != ident else "")


def register(app: typer.Typer) -> None:
    @app.command()
    def search(
        variant: VariantArgument,
        data_dir: DataDirOption,
        query: Annotated[str | None, typer.Argument(help="The query (or use --queries).")] = None,
        k: Annotated[int, typer.Option("-k", "--k", help="Hits per query.", min=1)] = 10,
        rerank: Annotated[Path | None, typer.Option("--rerank", help="Cross-encoder model path.")] = None,
        mmr: Annotated[
            float | None, typer.Option("--mmr", help="MMR lambda (1 = relevance only).", min=0, max=1)
        ] = None,
        queries: Annotated[Path | None, typer.Option("--queries", help="A file with one query per line.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Search a built datastore: top-k chunks with provenance; optional rerank and MMR diversification."""
        from catalog.variant import load_variant
        from flows.datastore import open_retriever
        from indexing.retrieve import select_for_reading

        texts = [q for q in (queries.read_text().splitlines() if queries else [query or ""]) if q.strip()]
        if not texts:
            raise RereadError("no query: give one as an argument or a file with --queries")
        v = load_variant(variant)
        retriever = open_retriever(v, data_dir)
        cfg = v.retrieval.model_copy(update={"top_k": max(v.retrieval.top_k, k), "mmr_lambda": mmr})
        reranker = None
        reranker_path = rerank or v.retrieval.reranker  # the flag wins over the variant's retrieval.reranker
        if reranker_path is not None:
            from indexing.rerank import Reranker

            reranker = Reranker(reranker_path)
        results = select_for_reading(retriever, texts, cfg, k, reranker=reranker)
        if as_json:
            if queries is None:
                typer.echo(json.dumps([_hit_json(h) for h in results[0]], ensure_ascii=False))
            else:
                for text, hits in zip(texts, results, strict=True):
                    typer.echo(json.dumps({"query": text, "hits": [_hit_json(h) for h in hits]}, ensure_ascii=False))
            return
        out = console()
        for text, hits in zip(texts, results, strict=True):
            out.print(f"[bold]{text}[/bold]")
            for h in hits:
                out.print(f"  {h.rank:>3}. {h.score:.4f}  {h.title or h.source_doc_id}  [dim]{hit_origin(h)}[/dim]")
                out.print(f"       {h.text[:200].replace(chr(10), ' ')}")
