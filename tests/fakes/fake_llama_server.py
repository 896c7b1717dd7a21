#!/usr/bin/env python3
"""A stand-in for llama-server that speaks enough of its HTTP API and fails on request.

Takes llama-server's own arguments (--host, --port, -m, -c, -t, -ngl, --alias, --no-webui, --api-key-file,
--version; with a key it refuses every request but /health without it, as llama-server does) and these
failure flags, each also readable from the environment (the portal builds the argv itself):
  --fake-load-seconds N    (FAKE_LLAMA_LOAD_SECONDS)  /health answers 503 for N seconds
  --fake-crash-after N     (FAKE_LLAMA_CRASH_AFTER)   exit with code 3 N seconds after start
  --fake-crash-at-load     (FAKE_LLAMA_CRASH_AT_LOAD) print a load error and exit with code 1
  --fake-garbage           (FAKE_LLAMA_GARBAGE)       answer chat and tokenize with non-JSON bytes
  --fake-die-on-chat       (FAKE_LLAMA_DIE_ON_CHAT)   exit abruptly when a chat request arrives
  --fake-die-mid-stream    (FAKE_LLAMA_DIE_MID_STREAM) exit after three streamed tokens
  --fake-tokens N          (FAKE_LLAMA_TOKENS)        stream about N tokens (the answer repeated)
  --fake-token-seconds S   (FAKE_LLAMA_TOKEN_SECONDS) pause S seconds after each streamed token
  --fake-hang-after N      (FAKE_LLAMA_HANG_AFTER)    N seconds after start, accept connections but never answer
  --fake-answer-file PATH  (FAKE_LLAMA_ANSWER_FILE)   answer with this text (streamed 7 characters a token)
The same names may also come as NAME=VALUE lines from the file named by FAKE_LLAMA_FLAGS_FILE.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

ANSWER = ["Paris", " is", " the", " capital", " of", " France", "."]


def _flags_from_file() -> dict[str, str]:
    """FAKE_LLAMA_FLAGS_FILE: lines of NAME=VALUE read at start (a portal's daemon keeps one env for all)."""
    path = os.environ.get("FAKE_LLAMA_FLAGS_FILE")
    if not path or not os.path.exists(path):
        return {}
    with open(path) as handle:
        pairs = [line.strip().split("=", 1) for line in handle if "=" in line]
    return {key.strip(): value.strip() for key, value in pairs}


def parse(argv: list[str]) -> argparse.Namespace:
    flags = {**os.environ, **_flags_from_file()}
    env = flags.get
    p = argparse.ArgumentParser()
    p.add_argument("--version", action="store_true")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("-m", dest="model", default="")
    p.add_argument("-c", dest="ctx", type=int, default=2048)
    p.add_argument("-t", dest="threads", type=int, default=4)
    p.add_argument("-ngl", dest="gpu_layers", type=int, default=0)
    p.add_argument("--alias", default="fake")
    p.add_argument("--no-webui", action="store_true")
    p.add_argument("--api-key-file", default="")
    p.add_argument("--embeddings", action="store_true")
    p.add_argument("--pooling", default="")
    p.add_argument("--metrics", action="store_true")
    p.add_argument("--fake-load-seconds", type=float, default=float(env("FAKE_LLAMA_LOAD_SECONDS", "0")))
    p.add_argument("--fake-crash-after", type=float, default=float(env("FAKE_LLAMA_CRASH_AFTER", "0")))
    p.add_argument("--fake-crash-at-load", action="store_true", default=bool(env("FAKE_LLAMA_CRASH_AT_LOAD")))
    p.add_argument("--fake-garbage", action="store_true", default=bool(env("FAKE_LLAMA_GARBAGE")))
    p.add_argument("--fake-die-on-chat", action="store_true", default=bool(env("FAKE_LLAMA_DIE_ON_CHAT")))
    p.add_argument("--fake-tokens", type=int, default=int(env("FAKE_LLAMA_TOKENS", "0")))
    p.add_argument("--fake-token-seconds", type=float, default=float(env("FAKE_LLAMA_TOKEN_SECONDS", "0")))
    p.add_argument("--fake-die-mid-stream", action="store_true", default=bool(env("FAKE_LLAMA_DIE_MID_STREAM")))
    p.add_argument("--fake-hang-after", type=float, default=float(env("FAKE_LLAMA_HANG_AFTER", "0")))
    p.add_argument("--fake-answer-file", default=env("FAKE_LLAMA_ANSWER_FILE", ""))
    return p.parse_args(argv)


def make_handler(opts: argparse.Namespace, ready_at: float):
    key = open(opts.api_key_file).read().strip() if opts.api_key_file else ""
    hang_at = time.monotonic() + opts.fake_hang_after if opts.fake_hang_after else float("inf")
    in_flight = [0]  # chat requests being answered, as /slots reports them
    predicted = [0]  # tokens sent, for /metrics

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # as llama-server's own sockets: no 40 ms wait on small writes

        def log_message(self, fmt, *args):
            print("request:", fmt % args, flush=True)

        def _send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _json(self, status: int, data: dict) -> None:
            self._send(status, json.dumps(data).encode())

        def handle_one_request(self):
            if time.monotonic() >= hang_at:
                time.sleep(3600)  # hung: the connection stays open and nothing answers
            super().handle_one_request()

        def _refused(self) -> bool:
            """As llama-server with --api-key: everything but /health wants `Authorization: Bearer <key>`."""
            if not key or self.path in ("/health", "/v1/health") or self.headers.get("Authorization") == f"Bearer {key}":
                return False
            self._json(401, {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}})
            return True

        def do_GET(self):
            if self._refused():
                return None
            if self.path == "/slots":
                return self._json(200, [{"id": 0, "is_processing": in_flight[0] > 0}])
            if self.path == "/health":
                loading = time.monotonic() < ready_at
                return self._json(503 if loading else 200, {"status": "loading model" if loading else "ok"})
            if self.path == "/v1/models":
                return self._json(200, {"object": "list", "data": [{"id": opts.alias, "object": "model"}]})
            if self.path == "/metrics":
                if not opts.metrics:
                    return self._not_supported("metrics endpoint", "--metrics")
                text = ("# HELP llamacpp:tokens_predicted_total Number of generation tokens processed.\n"
                        "# TYPE llamacpp:tokens_predicted_total counter\n"
                        f"llamacpp:tokens_predicted_total {predicted[0]}\n")
                return self._send(200, text.encode(), "text/plain; version=0.0.4")
            self._json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            if self._refused():
                return None
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
            if opts.fake_die_on_chat:
                print("fatal: simulated crash in the middle of a chat", flush=True)
                os._exit(4)
            if opts.fake_garbage:
                return self._send(200, b"\x00\xffnot json at all{{", "application/json")
            if self.path == "/tokenize":
                return self._json(200, {"tokens": list(range(len(body.get("content", "").split())))})
            if self.path == "/v1/chat/completions":
                in_flight[0] += 1
                try:
                    return self._chat(body)
                finally:
                    in_flight[0] -= 1
            if self.path == "/v1/embeddings":
                return self._embeddings(body)
            if self.path == "/completion":
                return self._json(200, {"content": ANSWER[0], "tokens_predicted": 1, "stop": True})
            self._json(404, {"error": {"message": "not found"}})

        def _not_supported(self, what: str, flag: str) -> None:
            self._json(501, {"error": {"code": 501, "message": f"This server does not support {what}. Start it with "
                                                              f"`{flag}`", "type": "not_supported_error"}})

        def _embeddings(self, body: dict) -> None:
            """Eight numbers from each text's sha256, so equal texts embed equal and others differ."""
            if not opts.embeddings:
                return self._not_supported("embeddings", "--embeddings")
            texts = body.get("input")
            texts = [texts] if isinstance(texts, str) else texts or []
            data = [{"object": "embedding", "index": n,
                     "embedding": [b / 255 for b in hashlib.sha256(str(text).encode()).digest()[:8]]}
                    for n, text in enumerate(texts)]
            tokens = sum(len(str(text).split()) for text in texts)
            self._json(200, {"object": "list", "model": opts.alias, "data": data,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

        def _chat(self, body: dict) -> None:
            if not body.get("stream"):
                predicted[0] += len(ANSWER)
                message = {"role": "assistant", "content": "".join(ANSWER)}
                return self._json(200, {"object": "chat.completion", "model": opts.alias,
                                        "choices": [{"index": 0, "message": message, "finish_reason": "stop"}],
                                        "usage": {"prompt_tokens": 9, "completion_tokens": len(ANSWER),
                                                  "total_tokens": 9 + len(ANSWER)}})
            self.send_response(200)
            self.send_header("Content-Type", "text/event-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            answer = ANSWER * max(1, opts.fake_tokens // len(ANSWER))
            for n, piece in enumerate(answer):
                if opts.fake_die_mid_stream and n == 3:
                    print("fatal: simulated crash in the middle of a stream", flush=True)
                    os._exit(5)
                chunk = {"object": "chat.completion.chunk", "model": opts.alias,
                         "choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self._chunk(f"data: {json.dumps(chunk)}\n\n".encode())
                predicted[0] += 1
                time.sleep(opts.fake_token_seconds)
            self._chunk(b"data: [DONE]\n\n")
            self._chunk(b"")

        def _chunk(self, data: bytes) -> None:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    return Handler


def main(argv: list[str]) -> int:
    global ANSWER
    opts = parse(argv)
    if opts.fake_answer_file:
        with open(opts.fake_answer_file, encoding="utf-8") as handle:
            text = handle.read()
        ANSWER = [text[i:i + 7] for i in range(0, len(text), 7)]
    if opts.version:
        print("version: 0 (fake)", file=sys.stderr)
        return 0
    print(f"fake llama-server: loading {opts.model} (ctx {opts.ctx}, threads {opts.threads})", flush=True)
    if opts.fake_crash_at_load:
        print(f"error: failed to load model '{opts.model}': unknown model architecture", flush=True)
        return 1
    if opts.fake_crash_after:
        def crash():
            time.sleep(opts.fake_crash_after)
            print("GGML_ASSERT failed: simulated crash", flush=True)
            os._exit(3)
        threading.Thread(target=crash, daemon=True).start()
    server = ThreadingHTTPServer((opts.host, opts.port), make_handler(opts, time.monotonic() + opts.fake_load_seconds))
    print(f"listening on http://{opts.host}:{opts.port}", flush=True)
    server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
