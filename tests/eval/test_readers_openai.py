"""The OpenAI-compatible reader against a small real HTTP server on 127.0.0.1 with scripted replies."""

from __future__ import annotations

import importlib.util
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from catalog.errors import ConfigError
from eval.readers import ChatMessage, GenerationParams, OpenAIReader, ReaderError, make_reader
from eval.readers.openai_reader import chat_completions_url, split_evenly


class ScriptedServer:
    """A /v1/chat/completions endpoint: pops a scripted status per request (200 when the script is empty)."""

    def __init__(self) -> None:
        self.statuses: list[int] = []
        self.requests: list[dict] = []
        self.ignores_n = False  # answer with one choice whatever n is (as llama.cpp's server does)
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append({"path": self.path, "body": body, "auth": self.headers.get("Authorization")})
                status = server.statuses.pop(0) if server.statuses else 200
                if self.path != "/v1/chat/completions":
                    status = 404
                if status != 200:
                    self.send_response(status)
                    self.send_header("Retry-After", "0")
                    self.end_headers()
                    self.wfile.write(b'{"error": "scripted"}')
                    return
                n = 1 if server.ignores_n else body["n"]
                question = body["messages"][-1]["content"]
                choices = [
                    {
                        "index": i,
                        "message": {"role": "assistant", "content": f"answer {i} to {question} seed {body['seed']}"},
                        "finish_reason": "length" if i == n - 1 else "stop",
                    }
                    for i in reversed(range(n))  # out of order on purpose: the reader sorts by index
                ]
                reply = {"choices": choices, "usage": {"prompt_tokens": 17, "completion_tokens": 10 * n + 1}}
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = ScriptedServer()
    yield srv
    srv.close()


PROMPT = [ChatMessage("system", "be brief"), ChatMessage("user", "2+2?")]


def test_n_choices_seeds_and_usage_split(server):
    reader = make_reader("openai", base_url=server.url + "/v1", model="tiny", api_key="k")
    [completions] = reader.generate([PROMPT], GenerationParams(n=3, seed=40, max_tokens=8, stop=("\n",)))
    assert [c.text for c in completions] == [f"answer {i} to 2+2? seed 40" for i in range(3)]
    assert [c.seed for c in completions] == [40, 41, 42]
    assert [c.prompt_tokens for c in completions] == [17, 17, 17]
    assert [c.completion_tokens for c in completions] == [11, 10, 10]  # 31 split evenly, remainder first
    assert [c.finish_reason for c in completions] == ["stop", "stop", "length"]
    [request] = server.requests
    assert request["auth"] == "Bearer k"
    body = request["body"]
    assert body["model"] == "tiny" and body["n"] == 3 and body["seed"] == 40 and body["stop"] == ["\n"]
    assert body["messages"] == [{"role": "system", "content": "be brief"}, {"role": "user", "content": "2+2?"}]


def test_token_counter_counts_each_choice(server):
    reader = OpenAIReader(server.url, "tiny", count_tokens=lambda text: len(text.split()))
    [completions] = reader.generate([PROMPT], GenerationParams(n=2))
    assert [c.completion_tokens for c in completions] == [6, 6]  # 'answer 0 to 2+2? seed 0'


def test_retries_on_429_and_5xx_then_succeeds(server):
    server.statuses = [429, 503]
    reader = OpenAIReader(server.url, "tiny", max_retries=3, backoff_s=0.01)
    out = reader.generate([PROMPT, PROMPT], GenerationParams(n=2, seed=1))
    assert len(server.requests) == 4  # two failures, then one success per prompt
    assert [len(c) for c in out] == [2, 2]


def test_gives_up_after_max_retries_and_does_not_retry_client_errors(server):
    server.statuses = [500] * 10
    reader = OpenAIReader(server.url, "tiny", max_retries=2, backoff_s=0.01)
    with pytest.raises(ReaderError, match="failed after 3 attempts, last error HTTP 500"):
        reader.generate([PROMPT], GenerationParams())
    server.statuses = [400]
    server.requests.clear()
    with pytest.raises(ReaderError, match="HTTP 400"):
        reader.generate([PROMPT], GenerationParams())
    assert len(server.requests) == 1


def test_per_sample_requests_send_one_seed_each(server):
    reader = OpenAIReader(server.url, "tiny", per_sample_requests=True, concurrency=1)
    [completions] = reader.generate([PROMPT], GenerationParams(n=3, seed=5))
    assert sorted(r["body"]["seed"] for r in server.requests) == [5, 6, 7]
    assert [c.seed for c in completions] == [5, 6, 7]
    assert all(r["body"]["n"] == 1 for r in server.requests)


def test_connection_refused_is_a_reader_error():
    reader = OpenAIReader("http://127.0.0.1:9", "tiny", max_retries=1, backoff_s=0.01)
    with pytest.raises(ReaderError, match="ConnectError"):
        reader.generate([PROMPT], GenerationParams())
    with pytest.raises(ReaderError, match="127.0.0.1:9/v1/completions cannot score a continuation"):
        reader.score([PROMPT], ["4"])


def test_url_and_split_helpers():
    assert chat_completions_url("http://h:8000/") == "http://h:8000/v1/chat/completions"
    assert chat_completions_url("http://h:8000/v1") == "http://h:8000/v1/chat/completions"
    assert split_evenly(7, 3) == [3, 2, 2] and sum(split_evenly(64, 5)) == 64


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vllm is installed here")
def test_vllm_reader_missing_is_a_config_error():
    with pytest.raises(ConfigError, match="vllm package is not installed"):
        make_reader("vllm", model="some/model")
    with pytest.raises(ConfigError, match="unknown kind"):
        make_reader("llamacpp")


def test_server_that_ignores_n_falls_back_to_one_request_per_sample(server, caplog):
    server.ignores_n = True
    reader = OpenAIReader(server.url, "tiny", concurrency=1)
    first, second = reader.generate([PROMPT, PROMPT], GenerationParams(n=3, seed=5))
    assert [c.seed for c in first] == [5, 6, 7] and [c.seed for c in second] == [5, 6, 7]
    assert [r["body"]["n"] for r in server.requests] == [3, 1, 1, 1, 1, 1, 1]  # detected once, then per sample
    assert "ignores n" in caplog.text and reader.per_sample_requests


def test_score_on_a_server_without_echo_logprobs_names_the_server(server):
    reader = OpenAIReader(server.url, "tiny", max_retries=0)
    with pytest.raises(ReaderError, match=f"{server.url}/v1/completions cannot score a continuation.*HTTP 404"):
        reader.score([PROMPT], ["4"])


class LogprobServer:
    """A /v1/completions endpoint backed by a real (tiny) causal LM: ``echo`` + ``logprobs`` + ``max_tokens: 0``
    returns every prompt token's log-probability and text offset, as vLLM's server does."""

    def __init__(self, model_path) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        model = AutoModelForCausalLM.from_pretrained(str(model_path)).eval()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                assert self.path == "/v1/completions" and body["echo"] and body["max_tokens"] == 0
                encoded = tokenizer(body["prompt"], return_offsets_mapping=True)
                ids = torch.tensor([encoded["input_ids"]])
                with torch.inference_mode():
                    logits = model(input_ids=ids).logits[0, :-1].float()
                values = torch.log_softmax(logits, -1).gather(-1, ids[0, 1:, None])[:, 0].tolist()
                offsets = [start for start, _ in encoded["offset_mapping"]]
                reply = {"choices": [{"text": body["prompt"], "logprobs": {
                    "token_logprobs": [None, *values], "text_offset": offsets}}]}  # fmt: skip
                data = json.dumps(reply).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()


@pytest.mark.slow
def test_score_from_echoed_prompt_logprobs_matches_the_model(tmp_path, build_tiny_model):
    from eval.readers import TransformersReader

    path = build_tiny_model(tmp_path)
    server = LogprobServer(path)
    try:
        reader = OpenAIReader(server.url, "tiny")
        prompt = [ChatMessage("system", "be brief"), ChatMessage("user", "hello world")]
        continuations = [" the cat sat on the mat", " the cat sat"]
        remote = reader.score([prompt, prompt], continuations)
        local = TransformersReader(path).score([prompt, prompt], continuations)
        assert remote == pytest.approx(local, abs=1e-4)
        assert remote[0] < remote[1] < 0
    finally:
        server.httpd.shutdown()
        server.httpd.server_close()


def test_chat_template_renders_the_scored_prompt():
    reader = OpenAIReader("http://127.0.0.1:9", "tiny", chat_template=(
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    ))  # fmt: skip
    assert reader.render(PROMPT) == "<|system|>be brief\n<|user|>2+2?\n<|assistant|>"
