"""What the bot says, as plain text: help, model descriptions, download progress."""
from __future__ import annotations

from django.conf import settings

from models_app.models import AIModel, ServeState, Status

GREETING = (
    "Hello! I am this group's AI model portal.\n"
    "Send /ai to chat with a model that is running, or /ai-help to see everything I can do."
)

HELP = """What I can do:

Chat
/ai — pick a running model from the buttons, then just write: every message goes to that model with the conversation so far, and the answer appears as it is written.
/ai-clear — end the conversation and forget it (it also ends by itself after {timeout} minutes of silence).

Models
/ai-list — every model: status, size, whether it is running, sharing figures (peers, uploaded, downloaded, ratio) and its magnet link.

For admins
/ai <Hugging Face URL> [file] — download a GGUF model, e.g.
  /ai https://huggingface.co/TheBloke/Llama-2-7B-Chat-GGUF llama-2-7b-chat.Q4_K_M.gguf
  /ai TheBloke/Llama-2-7B-Chat-GGUF (I offer the files as buttons)
/ai-serve <id> — start a model, e.g. /ai-serve TheBloke_Llama-2-7B-Chat-GGUF
/ai-stop <id> — stop it again.

Every command also works with an underscore: /ai_list, /ai_serve, /ai_stop, /ai_clear, /ai_help."""

COMMANDS = [
    ("ai", "Chat with a model (or, for admins: /ai <Hugging Face URL> downloads one)"),
    ("ai_list", "List the models with their status and sharing figures"),
    ("ai_serve", "Start serving a model: /ai_serve <id>"),
    ("ai_stop", "Stop serving a model: /ai_stop <id>"),
    ("ai_clear", "End the conversation and forget it"),
    ("ai_help", "What this bot can do, with examples"),
]

NOT_ALLOWED = "Sorry, this bot only talks to members of its group. Ask an admin to add your Telegram id ({user_id})."
ADMINS_ONLY = "Sorry, only the portal's admins can {what}. You can still chat: send /ai."
NO_SERVED = "No model is running right now."
NO_SERVED_MEMBER = NO_SERVED + " Ask an admin to start one (/ai-list shows them all)."


def human_bytes(n: int | float) -> str:
    n = float(n or 0)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def model_block(model: AIModel) -> str:
    """One model for /ai-list."""
    title = model.name if model.name == model.id else f"{model.name} (id: {model.id})"
    lines = [title, f"status: {model_state(model)}", f"size: {model_facts(model)}", f"sharing: {p2p_line(model)}"]
    if model.error and (model.status == Status.ERROR or model.serve_failed):
        lines.append(f"error: {model.error.splitlines()[0][:300]}")
    if model.magnet_uri:
        lines.append(f"magnet: {model.magnet_uri}")
    return "\n".join(lines)


def model_state(model: AIModel) -> str:
    if model.status in {Status.QUEUED, Status.DOWNLOADING}:
        return f"{model.status} {progress_line(model)}"
    instance = model.served
    if model.status == Status.SERVING and instance is not None and instance.port:
        nodes = [i.node for i in model.instance_list() if i.state == ServeState.SERVING]
        where = f" on {', '.join(nodes)}" if nodes != [settings.NODE_NAME] else ""  # one machine: as always
        return f"serving{where} (port {instance.port}, context {instance.context_size})"
    return str(model.status)


def model_facts(model: AIModel) -> str:
    facts = [human_bytes(model.size) if model.size else "unknown", model.format or "gguf"]
    meta = model.gguf or {}
    facts += [str(meta[key]) for key in ("quantization", "sizeLabel") if meta.get(key)]
    return ", ".join(facts)


def p2p_line(model: AIModel) -> str:
    seeding = "seeding" if model.seeding and model.magnet_uri else "not seeding"
    return (f"{seeding}, {model.peers} peers, uploaded {human_bytes(model.uploaded_bytes)}, "
            f"downloaded {human_bytes(model.downloaded_bytes)}, ratio {model.share_ratio:.2f}")


def progress_line(model: AIModel) -> str:
    done = model.downloaded_bytes or model.size * model.download_progress / 100
    parts = [f"{model.download_progress:.1f}%"]
    parts.append(f"{human_bytes(done)} of {human_bytes(model.size)}" if model.size else human_bytes(done))
    parts.append(f"{human_bytes(model.download_rate)}/s")
    parts.append(f"{model.peers} peers")
    return " · ".join(parts)


def download_text(model: AIModel) -> str:
    """The progress message of `/ai <url>`, edited as the download advances."""
    if model.status == Status.ERROR:
        return f"❌ Download of {model.id} failed: {model.error.splitlines()[0] if model.error else 'unknown error'}"
    if model.is_available:
        lines = [f"✅ Downloaded {model.id} ({human_bytes(model.size)}).",
                 f"magnet: {model.magnet_uri}" if model.magnet_uri else "magnet: (being created…)",
                 f"Start it with /ai-serve {model.id}"]
        return "\n".join(lines)
    if model.status == Status.VERIFYING:
        return f"⏳ {model.id}: checking the downloaded file…"
    return f"⬇️ Downloading {model.id}\n{model.status} · {progress_line(model)}"
