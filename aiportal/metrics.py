"""`GET /metrics`: the portal in Prometheus' text format.

- requests and their latency per front door (REST, OpenAI, Ollama, web, Telegram), counted by
  `aiportal.middleware.RequestMetrics` in this daphne process;
- tokens generated per model, from every door and process (kept in the database with each request);
- models by status, and bytes down and up, peers and size per model;
- each serving llama-server's own `/metrics` (it is started with `--metrics`), with `model` and `node`
  labels added, and `aiportal_llama_server_up` saying whether it answered.

Auth: a portal API token (`Authorization: Bearer <token>`, what Prometheus' `authorization` sends, or
`Token <token>`) or a logged-in session, unless `METRICS_PUBLIC` opens it.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass

import httpx
from asgiref.sync import sync_to_async
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)
PlatformCollector(registry=REGISTRY)

REQUESTS = Counter("aiportal_requests", "HTTP requests answered, by front door, method and status code.",
                   ["door", "method", "status"], registry=REGISTRY)
LATENCY = Histogram("aiportal_request_duration_seconds",
                    "Seconds from a request to its response (to the first byte, for a stream), by front door.",
                    ["door"], registry=REGISTRY,
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120))
SCRAPE_TIMEOUT = httpx.Timeout(2.0)


def door(path: str) -> str:
    """The front door a request came in by."""
    if path.startswith("/v1/"):
        return "openai"
    if path.startswith("/api/ai/") or path.startswith("/api/schema"):
        return "rest"
    if path.startswith("/api/"):
        return "ollama"
    if path.startswith("/telegram/"):
        return "telegram"
    if path in ("/healthz", "/metrics"):
        return "ops"
    return "web"


class _PortalState:
    """What the database knows, read at each scrape."""

    def collect(self):
        from aiportal.models import Node
        from models_app.models import ModelCopy, ServedInstance, Status
        from models_app.selectors import model_list

        models = list(model_list())
        by_status = GaugeMetricFamily("aiportal_models", "Models by status.", labels=["status"])
        for status in Status.values:
            by_status.add_metric([status], sum(1 for model in models if model.status == status))
        yield by_status

        size = GaugeMetricFamily("aiportal_model_size_bytes", "Bytes of a model's files.", labels=["model"])
        down = CounterMetricFamily("aiportal_model_downloaded_bytes", "Bytes of a model this node has downloaded "
                                   "(from the Hub or from peers).", labels=["model", "node"])
        up = CounterMetricFamily("aiportal_model_uploaded_bytes", "Bytes of a model uploaded to peers.",
                                 labels=["model", "node"])
        peers = GaugeMetricFamily("aiportal_model_peers", "Peers connected for a model's torrent.", labels=["model"])
        for model in models:
            size.add_metric([model.id], model.size)
            peers.add_metric([model.id], model.peers)
        for model_id, node, downloaded, uploaded in ModelCopy.objects.values_list(
                "model_id", "node", "downloaded_bytes", "uploaded_bytes"):
            down.add_metric([model_id, node], downloaded)
            up.add_metric([model_id, node], uploaded)
        yield from (size, down, up, peers)

        tokens = CounterMetricFamily("aiportal_tokens_generated", "Tokens the model generated for the portal's "
                                     "front doors (every door, every process).", labels=["model", "node"])
        for instance in ServedInstance.objects.only("model_id", "node", "tokens_generated"):
            tokens.add_metric([instance.model_id, instance.node], instance.tokens_generated)
        yield tokens

        nodes = GaugeMetricFamily("aiportal_node_online", "1 while a node daemon heartbeats.", labels=["node"])
        for node in Node.objects.all():
            nodes.add_metric([node.name], 1 if node.online else 0)
        yield nodes


REGISTRY.register(_PortalState())


@dataclass(frozen=True)
class _Target:
    model: str
    node: str
    url: str
    key: str


def _targets() -> list[_Target]:
    from models_app.models import ServedInstance, ServeState

    return [_Target(model=i.model_id, node=i.node, url=i.url, key=i.api_key)
            for i in ServedInstance.objects.filter(state=ServeState.SERVING).exclude(port=None).order_by("model_id")]


async def _scrape(client: httpx.AsyncClient, target: _Target) -> str | None:
    headers = {"Authorization": f"Bearer {target.key}"} if target.key else {}
    try:
        response = await client.get(f"{target.url}/metrics", headers=headers)
    except httpx.HTTPError:
        return None
    return response.text if response.status_code == 200 else None


def _relabelled(scraped: list[tuple[_Target, str | None]]) -> bytes:
    """Every llama-server's families, merged by name, each sample labelled with its model and node."""
    families: dict[str, Metric] = {}
    up = GaugeMetricFamily("aiportal_llama_server_up", "1 when a serving llama-server answered its /metrics.",
                           labels=["model", "node"])
    for target, text in scraped:
        try:
            parsed = None if text is None else list(text_string_to_metric_families(text))
        except ValueError:  # not Prometheus text: counted as not answering
            parsed = None
        up.add_metric([target.model, target.node], 0 if parsed is None else 1)
        for family in parsed or []:
            merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                merged.add_sample(sample.name, {**sample.labels, "model": target.model, "node": target.node},
                                  sample.value)

    class _Collected:
        def collect(self):
            yield up
            yield from families.values()

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collected())
    return generate_latest(registry)


def _denied(request: HttpRequest) -> HttpResponse | None:
    if settings.METRICS_PUBLIC or request.user.is_authenticated:
        return None
    from rest_framework.exceptions import AuthenticationFailed

    from aiportal.auth import BearerAuthentication, TokenAuthentication

    message = "Send `Authorization: Bearer <api token>` (or set METRICS_PUBLIC=on to open /metrics)."
    try:
        if any(scheme().authenticate(request) for scheme in (BearerAuthentication, TokenAuthentication)):
            return None
    except AuthenticationFailed as exc:
        message = f"{exc.detail} {message}"
    response = HttpResponse(message + "\n", status=401, content_type="text/plain; charset=utf-8")
    response["WWW-Authenticate"] = 'Bearer realm="aiportal"'
    return response


def _portal_text(request: HttpRequest) -> tuple[HttpResponse | None, bytes, list[_Target]]:
    denied = _denied(request)
    if denied is not None:
        return denied, b"", []
    return None, generate_latest(REGISTRY), _targets()


async def metrics_view(request: HttpRequest) -> HttpResponse:
    if request.method != "GET":
        return HttpResponse("Only GET.\n", status=405, content_type="text/plain; charset=utf-8")
    denied, text, targets = await sync_to_async(_portal_text)(request)
    if denied is not None:
        return denied
    async with httpx.AsyncClient(timeout=SCRAPE_TIMEOUT) as client:
        texts = await asyncio.gather(*(_scrape(client, target) for target in targets))
    response = HttpResponse(text + _relabelled(list(zip(targets, texts))), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
