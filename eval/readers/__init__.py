"""Reader models: the interface (``eval.readers.base``) and its implementations, registered by kind.

Importing this package registers ``transformers``, ``openai`` and ``vllm``; torch, transformers and vllm are only
imported when such a reader is built.
"""

from eval.readers import openai_reader, transformers_reader, vllm_reader  # noqa: F401  (importing registers)
from eval.readers.base import (
    READERS,
    ChatMessage,
    Completion,
    GenerationParams,
    Reader,
    ReaderError,
    make_reader,
    register_reader,
)
from eval.readers.openai_reader import OpenAIReader
from eval.readers.transformers_reader import TransformersReader
from eval.readers.vllm_reader import VLLMReader

__all__ = [
    "READERS",
    "ChatMessage",
    "Completion",
    "GenerationParams",
    "OpenAIReader",
    "Reader",
    "ReaderError",
    "TransformersReader",
    "VLLMReader",
    "make_reader",
    "register_reader",
]
