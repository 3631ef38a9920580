"""Task files are validated on load: metric cut-offs that cannot mean anything are a ConfigError naming the file."""

from __future__ import annotations

import pytest

from catalog.errors import ConfigError
from eval.tasks import load_task

QA_TASK = "kind: qa\nname: t\nbenchmark: mmlu\npath: data\n"


@pytest.mark.parametrize(
    ("ks", "message"),
    [
        ("[-5, 0]", "field 'ks.0': Input should be greater than or equal to 1; field 'ks.1'"),
        ("[5, 0]", "field 'ks.1': Input should be greater than or equal to 1"),
        ("[]", "field 'ks': Tuple should have at least 1 item"),
        ("[5, 5]", "ks [5, 5] repeats a cut-off"),
        ("[10, 1000]", "ks [10, 1000] go past retrieve_k 100"),
    ],
)
def test_bad_ks_are_rejected_at_load(tmp_path, ks, message):
    path = tmp_path / "task.yaml"
    path.write_text(QA_TASK + f"ks: {ks}\n")
    with pytest.raises(ConfigError, match="invalid task") as caught:
        load_task(path)
    assert str(path) in str(caught.value) and message in str(caught.value)


def test_good_ks_load(tmp_path):
    path = tmp_path / "task.yaml"
    path.write_text(QA_TASK + "ks: [1, 10, 1000]\nretrieve_k: 1000\n")
    assert load_task(path).ks == (1, 10, 1000)
    path.write_text(QA_TASK)
    assert load_task(path).ks == (1, 5, 10, 100)
