"""Session-wide fixtures: paths to the real shared data, the bundled embedder, a Prefect test harness."""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

import pytest

# Offline everywhere: nothing may reach a hub at test time, and faiss/torch must not oversubscribe 2 cores.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = REPO_ROOT / "tests" / "fixtures"
SAMPLE_DATA = REPO_ROOT / "sample_data"


# ---------------------------------------------------------------- network guard
# Tests may talk to 127.0.0.0/8, ::1 and Unix sockets only. Crawler tests name 10.0.0.1 or 169.254.169.254 as
# targets the address guard must refuse; should that guard ever fail, this one stops the connection and fails the test.
_LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})
_REAL_CONNECT = socket.socket.connect
_REAL_CONNECT_EX = socket.socket.connect_ex
_REAL_CREATE_CONNECTION = socket.create_connection
_REAL_GETADDRINFO = socket.getaddrinfo
_REAL_SENDTO = socket.socket.sendto
_BLOCKED: list[str] = []  # connections refused during the running test (threads included)


class NonLoopbackConnection(OSError):
    """A test tried to open a connection beyond loopback."""


def _is_loopback_host(host: object) -> bool:
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str):
        return False
    name = host.strip("[]").split("%", 1)[0].rstrip(".").lower()
    if name in _LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback  # a name other than localhost would need DNS: refused too
    except ValueError:
        return False


def _check_address(family: int, address: object) -> None:
    if family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple) or not address:
        return  # AF_UNIX paths, netlink and the like never leave the machine
    if not _is_loopback_host(address[0]):
        _BLOCKED.append(repr(address))
        raise NonLoopbackConnection(f"test network guard: connection to {address!r} refused (loopback only)")


def _guarded_connect(self: socket.socket, address):
    _check_address(self.family, address)
    return _REAL_CONNECT(self, address)


def _guarded_connect_ex(self: socket.socket, address):
    _check_address(self.family, address)
    return _REAL_CONNECT_EX(self, address)


def _guarded_create_connection(address, *args, **kwargs):
    _check_address(socket.AF_INET, address)  # checked before the name is resolved: no DNS query leaves either
    return _REAL_CREATE_CONNECTION(address, *args, **kwargs)


def _guarded_getaddrinfo(host, *args, **kwargs):
    # A name other than localhost would be sent to the system's DNS server (not on loopback): refused. IP literals
    # resolve locally with no packet, so the crawler's own address guard still sees 10.0.0.1 and refuses it itself.
    name = host.decode("ascii", "replace") if isinstance(host, bytes) else host
    if isinstance(name, str) and not _is_loopback_host(name):
        literal = name.strip("[]").split("%", 1)[0]
        try:
            ipaddress.ip_address(literal)
        except ValueError:
            try:
                socket.inet_aton(literal)  # legacy numeric forms (2130706433, 127.1) resolve locally too
            except OSError:
                _BLOCKED.append(f"DNS lookup of {name!r}")
                raise socket.gaierror(
                    socket.EAI_NONAME, f"test network guard: DNS lookup of {name!r} refused"
                ) from None
    return _REAL_GETADDRINFO(host, *args, **kwargs)


def _guarded_sendto(self: socket.socket, data, *args):
    _check_address(self.family, args[-1])  # sendto(data, address) or sendto(data, flags, address)
    return _REAL_SENDTO(self, data, *args)


@pytest.fixture(autouse=True)
def loopback_only_network(monkeypatch):
    """Fail any test whose code tries to connect a socket beyond loopback (even when the code swallows the error).
    The value is the list of refused addresses (a test of the guard itself empties it)."""
    monkeypatch.setattr(socket.socket, "connect", _guarded_connect)
    monkeypatch.setattr(socket.socket, "connect_ex", _guarded_connect_ex)
    monkeypatch.setattr(socket, "create_connection", _guarded_create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", _guarded_getaddrinfo)
    monkeypatch.setattr(socket.socket, "sendto", _guarded_sendto)
    _BLOCKED.clear()
    yield _BLOCKED
    blocked, _BLOCKED[:] = list(_BLOCKED), []
    if blocked:
        pytest.fail(f"the test tried to connect beyond loopback: {', '.join(blocked)}")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real public data beside the repository (``../shared/data``); tests using it skip when it is absent."""
    path = Path(os.environ.get("REREAD_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"shared data not found at {path}")
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def prefect_harness():
    """One Prefect test harness (a temporary server and database) for the whole session: its first start migrates a
    database, which takes tens of seconds, so tests that run flows share it."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


TINY_SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "system user assistant answer question",
    "one two three four five six seven eight nine ten",
    "be brief hello world : ? .",
    "A B C D Answer :",
]


def _build_tiny_llama(path, chat_template: str | None = None, max_positions: int = 128):
    """A 2-layer Llama with a word-level tokenizer, built and saved by the test: a real model for the reader
    interface where a real LLM cannot run."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]"]
    backend = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.train_from_iterator(
        TINY_SENTENCES + ["System User Assistant"], trainers.WordLevelTrainer(special_tokens=specials)
    )
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]", bos_token="[BOS]", eos_token="[EOS]"
    )
    if chat_template:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(path)
    config = LlamaConfig(
        vocab_size=backend.get_vocab_size(),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        bos_token_id=2,
        eos_token_id=3,
        pad_token_id=0,
    )
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def build_tiny_model():
    return _build_tiny_llama


def pytest_collection_modifyitems(config, items):
    """Tests that use an expensive fixture are marked ``slow``, so ``make test-fast`` (``-m "not slow"``) leaves them
    out and ``make test`` (CI) runs them: the session's ``prefect_harness`` (they run Prefect flows end to end) and
    the fixtures a test module names in its ``SLOW_FIXTURES`` (e.g. a datastore embedded with the real MiniLM)."""
    for item in items:
        slow = {"prefect_harness", *getattr(getattr(item, "module", None), "SLOW_FIXTURES", ())}
        if slow & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)
