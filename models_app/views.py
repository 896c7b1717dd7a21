"""Web pages for models: the list (home page), add, detail, and the serve/stop/delete actions.

Every action calls the same service as the REST API; an ApplicationError is shown next to the
form or the model row that caused it.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from aiportal.errors import ApplicationError, NotFound
from models_app import selectors, services
from models_app.forms import AddModelForm, DeleteForm, ServeForm
from models_app.hub.refs import hub_ref_names_file
from models_app.hub.services import download_start, repo_gguf_files
from models_app.inference.services import serve_estimate, serve_start, serve_stop
from torrents_app.models import Torrent
from torrents_app.sharing import copy_remove, copy_start, magnet_download_start, torrent_file_get, torrent_set_seeding

LOG_TAIL_BYTES = 12_000
SERVE_FIELDS = {"port": "port", "contextSize": "context_size", "threads": "threads", "gpuLayers": "gpu_layers"}


@login_required
@require_GET
def model_list_view(request: HttpRequest) -> HttpResponse:
    return _list_page(request)


@login_required
@require_GET
def model_row_view(request: HttpRequest, model_id: str) -> HttpResponse:
    model = _get(model_id)
    return render(request, "models/_row.html", {"m": selectors.model_to_dict(model),
                                                "several_nodes": len(selectors.node_list()) > 1})


@login_required
def model_add_view(request: HttpRequest) -> HttpResponse:
    form = AddModelForm(request.POST or None, initial={"create_torrent": True})
    if request.method != "POST" or not form.is_valid():
        return render(request, "models/add.html", {"form": form})
    try:
        return _add(request, form)
    except ApplicationError as exc:
        form.add_error("source", exc.message)
        return render(request, "models/add.html", {"form": form}, status=exc.status)


def _add(request: HttpRequest, form: AddModelForm) -> HttpResponse:
    if form.is_magnet:
        model = magnet_download_start(magnet_uri=form.cleaned_data["source"])
        return redirect(f"{reverse('home')}#model-{model.pk}")
    return _add_from_hub(request, form)


def _add_from_hub(request: HttpRequest, form: AddModelForm) -> HttpResponse:
    """A repo with several GGUF files asks which one first; a file link or a single file starts at once."""
    data = form.cleaned_data
    file_name = data["file_name"] or None
    if file_name is None and not hub_ref_names_file(data["source"], endpoint=settings.HF_ENDPOINT):
        files = repo_gguf_files(url=data["source"])
        if len(files) > 1:
            return render(request, "models/add.html", {"form": form, "files": files, "chosen": _default_file(files)})
    model = download_start(url=data["source"], file_name=file_name, create_torrent=data["create_torrent"],
                           requested_by=request.user.get_username())
    return redirect(f"{reverse('home')}#model-{model.pk}")


def _default_file(files: list[dict]) -> str:
    names = [f["fileName"] for f in files]
    preferred = [n for n in names if "q4_k_m" in n.lower()]
    return (preferred or names or [""])[0]


@login_required
@require_GET
def model_detail_view(request: HttpRequest, model_id: str) -> HttpResponse:
    return _detail_page(request, model_id)


@login_required
@require_POST
def model_serve_view(request: HttpRequest, model_id: str) -> HttpResponse:
    form = ServeForm(request.POST)
    if not form.is_valid():
        return _back(request, model_id, error=None, serve_form=form, status=400)
    options = {key: value for key, value in form.cleaned_data.items() if value is not None}
    try:
        serve_start(model_id=model_id, node=_node_field(request), **options)
    except ApplicationError as exc:
        return _back(request, model_id, error=_serve_error(exc, form, request), serve_form=form, status=exc.status)
    return redirect(_next_url(request, model_id))


def _serve_error(exc: ApplicationError, form: ServeForm, request: HttpRequest) -> str | None:
    """Put an error about one option next to that field on the detail page; others go above."""
    field = SERVE_FIELDS.get(exc.extra.get("field") or ("port" if "port" in exc.extra else ""))
    if field is None or request.POST.get("next") != "detail":
        return exc.message
    form.add_error(field, exc.message)
    return None


@login_required
@require_POST
def model_stop_view(request: HttpRequest, model_id: str) -> HttpResponse:
    return _act(request, model_id, lambda: serve_stop(model_id=model_id, node=_node_field(request)))


def _node_field(request: HttpRequest) -> str | None:
    """The machine a Serve or Stop button of the Machines card names; none: the portal picks, or all."""
    return request.POST.get("node") or None


@login_required
@require_POST
def model_seeding_view(request: HttpRequest, model_id: str) -> HttpResponse:
    enabled = request.POST.get("enabled") == "on"
    return _act(request, model_id, lambda: torrent_set_seeding(model_id=model_id, enabled=enabled))


@login_required
@require_POST
def model_copy_view(request: HttpRequest, model_id: str) -> HttpResponse:
    node = request.POST.get("node", "")[:200]
    return _act(request, model_id, lambda: copy_start(model_id=model_id, node=node))


@login_required
@require_POST
def model_copy_remove_view(request: HttpRequest, model_id: str, node: str) -> HttpResponse:
    return _act(request, model_id, lambda: copy_remove(model_id=model_id, node=node))


@login_required
@require_POST
def model_delete_view(request: HttpRequest, model_id: str) -> HttpResponse:
    form = DeleteForm(request.POST)
    form.is_valid()
    delete_files = form.cleaned_data.get("delete_files", False)
    try:
        services.model_delete(model_id=model_id, delete_files=delete_files)
    except ApplicationError as exc:
        return _back(request, model_id, error=exc.message, status=exc.status)
    return redirect("home")


@login_required
@require_GET
def model_torrent_view(request: HttpRequest, model_id: str) -> HttpResponse:
    try:
        name, data = torrent_file_get(model_id=model_id)
    except NotFound as exc:
        raise Http404(exc.message) from None
    response = HttpResponse(data, content_type="application/x-bittorrent")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


def _act(request: HttpRequest, model_id: str, action, **context) -> HttpResponse:
    try:
        action()
    except ApplicationError as exc:
        return _back(request, model_id, error=exc.message, status=exc.status, **context)
    return redirect(_next_url(request, model_id))


def _next_url(request: HttpRequest, model_id: str) -> str:
    if request.POST.get("next") == "detail":
        return reverse("model-page", args=[model_id])
    return f"{reverse('home')}#model-{model_id}"


def _back(request: HttpRequest, model_id: str, *, error: str | None, status: int, **context) -> HttpResponse:
    """Show the page the action came from again, with the error next to the model or form."""
    action_error = {"model_id": model_id, "message": error} if error else None
    if request.POST.get("next") == "detail" and selectors.model_list().filter(pk=model_id).exists():
        return _detail_page(request, model_id, action_error=action_error, status=status, **context)
    return _list_page(request, action_error=action_error, status=status)


def _list_page(request: HttpRequest, *, status: int = 200, **context) -> HttpResponse:
    models = selectors.models_to_dicts(selectors.model_list())
    nodes = selectors.node_list()
    error = context.get("action_error")
    context["page_error"] = error if error and error["model_id"] not in {m["id"] for m in models} else None
    # On one machine the page looks as it always did; with several, it shows them and where each model is.
    return render(request, "models/list.html", {"models": models, "nodes": nodes, "several_nodes": len(nodes) > 1,
                                                **context}, status=status)


def _detail_page(request: HttpRequest, model_id: str, *, status: int = 200, **context) -> HttpResponse:
    model = _get(model_id)
    instance = model.served
    nodes = selectors.node_list()
    held = {c.node for c in model.copies.all()}
    m = selectors.model_to_dict(model)
    context = {
        "m": m,
        "several_nodes": len(nodes) > 1 or len(held) > 1,
        "machines": _machines(m, online={n["name"] for n in nodes if n["online"]}),
        # Where a copy can go now: online nodes without one (SPEC §9 copies).
        "copy_targets": [n["name"] for n in nodes if n["online"] and n["name"] not in held],
        "files": list(model.files.all()),
        "instance": instance,
        "log_tail": _log_tail(instance.log_path if instance else ""),
        "has_torrent": Torrent.objects.filter(copy__model=model, torrent_file__isnull=False).exists(),
        "serve_form": ServeForm(),
        "estimate": serve_estimate(model=model) if model.is_available else None,
        "delete_form": DeleteForm(),
        **context,
    }
    return render(request, "models/detail.html", context, status=status)


def _machines(m: dict, *, online: set[str]) -> list[dict]:
    """Each machine's copy with its server there, and whether a Serve or a Stop button fits (SPEC §9)."""
    servers = {i["node"]: i for i in m["instances"]}
    rows = []
    for copy in m["copies"]:
        server = servers.get(copy["node"])
        wanted = server is not None and server["desired"] == "serving"
        rows.append({"copy": copy, "server": server,
                     "can_serve": copy["status"] == "ready" and copy["node"] in online and not wanted,
                     "can_stop": wanted or server is not None and server["status"] == "error"})
    return rows


def _get(model_id: str):
    try:
        return selectors.model_get(model_id=model_id)
    except NotFound as exc:
        raise Http404(exc.message) from None


def _log_tail(path: str, lines: int = 60) -> str:
    if not path:
        return ""
    try:
        with Path(path).open("rb") as handle:
            handle.seek(0, 2)
            handle.seek(max(0, handle.tell() - LOG_TAIL_BYTES))
            text = handle.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
