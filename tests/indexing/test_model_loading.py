"""Models loaded in several threads at once (a thread task runner runs a build's embed units side by side): each one
has its real weights, and a model loaded afterwards too. Without ``MODEL_LOAD_LOCK`` transformers' process-global
loading state let one thread's load see another's meta-device context: randomly initialised weights, then
``Cannot copy out of meta tensor`` for every later load (the demo's reader)."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from catalog.variant import EmbedderConfig
from indexing.embed import Embedder

# loads MiniLM ten times and the bundled SmolLM2 (converted once, by the bundled-reader test or here)
pytestmark = pytest.mark.slow

SENTENCE = ["re-reading the pre-training corpus at test time"]


def test_models_loaded_in_threads_at_once_have_their_weights():
    from eval.readers.transformers_reader import TransformersReader

    vectors, errors = [], []

    def load() -> None:
        try:
            embedder = Embedder(EmbedderConfig())
            assert not any(p.is_meta for p in embedder.model.parameters())
            vectors.append(embedder.model.encode(SENTENCE))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below, with the thread's reason
            errors.append(repr(exc))

    for _ in range(3):
        threads = [threading.Thread(target=load) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    alone = Embedder(EmbedderConfig()).model.encode(SENTENCE)
    reader = TransformersReader("smollm2-135m-instruct")  # a causal LM loaded after them: it failed on meta tensors

    assert not any(p.is_meta for p in reader.model.parameters())
    assert errors == []
    assert len(vectors) == 9
    for vector in vectors:
        np.testing.assert_allclose(vector, alone, atol=1e-6)
