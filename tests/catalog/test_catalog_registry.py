"""The one registry type: duplicates refused, unknown names listed, every config-named table built on it."""

from __future__ import annotations

import pytest

from catalog.errors import ConfigError
from catalog.registry import Registry


def test_register_lookup_and_mapping_view():
    reg: Registry[int] = Registry("widget")
    assert reg.register("b")(2) == 2
    reg.add("a", 1)
    assert reg.lookup("a") == 1 and reg["b"] == 2
    assert sorted(reg) == ["a", "b"] and len(reg) == 2 and "a" in reg and "c" not in reg
    assert dict(reg.items()) == {"a": 1, "b": 2}


def test_duplicate_name_is_refused_not_overwritten():
    reg: Registry[int] = Registry("widget")
    reg.add("a", 1)
    with pytest.raises(ValueError, match="widget 'a' is registered twice"):
        reg.add("a", 2)
    assert reg["a"] == 1


def test_unknown_name_lists_the_registered_ones_with_the_chosen_error():
    reg: Registry[int] = Registry("widget")
    reg.add("b", 1)
    reg.add("a", 1)
    with pytest.raises(ConfigError, match=r"unknown widget 'z'; registered: a, b"):
        reg.lookup("z")
    with pytest.raises(KeyError):
        Registry("gadget", KeyError).lookup("z")


def test_every_named_table_is_a_registry():
    from eval.answers import ANSWER_EXTRACTORS
    from eval.benchmarks import BENCHMARKS
    from eval.graders import GRADERS
    from eval.multiplier_curves import CURVE_FORMS
    from eval.prompts import PROMPTS
    from eval.readers import READERS
    from eval.theory.experiments import EXPERIMENTS
    from eval.theory.mixture import MIXTURE_MODELS, QP_VARIANTS
    from eval.theory.plots import PLOTTERS
    from eval.theory.training import PARAMETERISATIONS
    from eval.tts.policy import DIFFICULTY
    from eval.tts.strategies import SEARCHES, SELECTIONS
    from eval.tts.verifiers import VERIFIER_HEADS
    from extract.extractors import EXTRACTORS
    from extract.sources import SOURCE_TYPES

    tables = [
        ANSWER_EXTRACTORS,
        BENCHMARKS,
        GRADERS,
        CURVE_FORMS,
        PROMPTS,
        READERS,
        EXPERIMENTS,
        MIXTURE_MODELS,
        QP_VARIANTS,
        PLOTTERS,
        PARAMETERISATIONS,
        DIFFICULTY,
        SEARCHES,
        SELECTIONS,
        VERIFIER_HEADS,
        EXTRACTORS,
        SOURCE_TYPES,
    ]
    assert all(isinstance(t, Registry) and len(t) > 0 for t in tables)
    # HTML extractors and answer extractors are different things with different names
    assert "trafilatura" in EXTRACTORS and "multiple_choice" in ANSWER_EXTRACTORS
