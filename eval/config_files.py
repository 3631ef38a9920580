"""Reading an evaluation YAML file into its pydantic model, with errors that name the file and the field."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from catalog.errors import ConfigError

ModelT = TypeVar("ModelT", bound=BaseModel)


def invalid_fields(exc: ValidationError, skip: int = 0, root: str = "(root)") -> str:
    """One ``field 'a.b': message`` per error; ``skip`` drops leading location parts of a wrapper model and
    ``root`` names an error with no location left."""
    return "; ".join(f"field '{'.'.join(map(str, e['loc'][skip:])) or root}': {e['msg']}" for e in exc.errors())


def load_yaml_model(path: str | Path, model: type[ModelT], what: str) -> ModelT:
    """``model`` validated from the YAML file at ``path`` (an empty file is an empty mapping). Raises ConfigError
    naming the file and ``what`` it should hold when it cannot be read or does not validate."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"{path}: cannot read {what}: {exc}") from None
    try:
        return model.model_validate(raw or {})
    except ValidationError as exc:
        raise ConfigError(f"{path}: invalid {what}: {invalid_fields(exc)}") from None
