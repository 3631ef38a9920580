"""Reader models: the interface (``eval.readers.base``) and its implementations, registered by kind."""

from eval.readers.base import READERS, ChatMessage, Completion, GenerationParams, Reader, make_reader, register_reader

__all__ = ["READERS", "ChatMessage", "Completion", "GenerationParams", "Reader", "make_reader", "register_reader"]
