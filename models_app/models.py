"""AI models (what a file is), their copies (that file on one node) and their served llama-server instances.

The copy and the instance each have a small state machine, with the moves allowed in
`models_app.states`; the model's own status and transfer figures are summaries of them (SPEC §9).
"""
from __future__ import annotations

from django.db import models


class Status(models.TextChoices):
    """The model object's `status` (SPEC §4): its copies' statuses, and while it is served its instance's."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    READY = "ready"
    STARTING = "starting"
    SERVING = "serving"
    STOPPING = "stopping"
    ERROR = "error"


class CopyStatus(models.TextChoices):
    """A file's lifecycle on one node."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    VERIFYING = "verifying"
    READY = "ready"
    ERROR = "error"
    # Asked to go: its node's daemon deletes the files, then the row.
    REMOVING = "removing"


class Source(models.TextChoices):
    HUGGINGFACE = "huggingface"
    MAGNET = "magnet"
    LOCAL = "local"


# How far along a copy is: the model's status is its most advanced copy's.
_ADVANCE = {CopyStatus.REMOVING: -1, CopyStatus.ERROR: 0, CopyStatus.QUEUED: 1, CopyStatus.DOWNLOADING: 2,
            CopyStatus.VERIFYING: 3, CopyStatus.READY: 4}


class AIModel(models.Model):
    id = models.CharField(primary_key=True, max_length=200)
    name = models.CharField(max_length=300)
    source = models.CharField(max_length=20, choices=Source.choices)
    repo_id = models.CharField(max_length=200, blank=True, db_index=True)
    revision = models.CharField(max_length=100, blank=True)
    file_name = models.CharField(max_length=500, blank=True, help_text="Main GGUF file, relative to the model folder")
    format = models.CharField(max_length=20, default="gguf")
    size = models.BigIntegerField(default=0, help_text="Total bytes of all files")
    sha256 = models.CharField(max_length=64, blank=True, db_index=True)
    # Sharing
    magnet_uri = models.TextField(blank=True)
    info_hash = models.CharField(max_length=40, blank=True, db_index=True, help_text="v1 info-hash (hex)")
    info_hash_v2 = models.CharField(max_length=64, blank=True, db_index=True, help_text="v2 info-hash (hex)")
    web_seed = models.URLField(max_length=1000, blank=True)
    # Metadata read from the GGUF header
    gguf = models.JSONField(null=True, blank=True)
    requested_by = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "AI model"

    def __str__(self) -> str:
        return self.id

    # -- its copies (read with `copies.all()`, so a prefetch serves a whole list) ---------------------
    def copy_list(self) -> list[ModelCopy]:
        """Most advanced first; of equals, the oldest."""
        return sorted(self.copies.all(), key=lambda c: (-_ADVANCE.get(c.status, 0), c.pk or 0))

    def copy_on(self, node: str) -> ModelCopy | None:
        return next((c for c in self.copies.all() if c.node == node), None)

    @property
    def lead(self) -> ModelCopy | None:
        """The most advanced copy (the oldest of equals): what the seed-era fields describe."""
        found = self.copy_list()
        return found[0] if found else None

    @property
    def holders(self) -> list[str]:
        """Nodes holding a complete, verified copy."""
        return [c.node for c in self.copy_list() if c.status == CopyStatus.READY]

    # -- its instances (read with `instances.all()`, likewise) ----------------------------------------
    def instance_list(self) -> list[ServedInstance]:
        """The most useful first: serving, then wanted, then going, then failed, then stopped; of equals, by node."""
        return sorted(self.instances.all(), key=lambda i: (_instance_rank(i), i.node))

    def instance_on(self, node: str) -> ServedInstance | None:
        return next((i for i in self.instances.all() if i.node == node), None)

    @property
    def served(self) -> ServedInstance | None:
        """The instance the seed-era fields describe (`status`, `server`, a serve `error`)."""
        found = self.instance_list()
        return found[0] if found else None

    @property
    def status(self) -> str:
        """`serving` while an instance serves, `starting` while one is wanted and not up yet, `stopping` while
        one goes; otherwise (a failed instance too: the file is fine) the most advanced copy's status."""
        instance = self.served
        if instance is not None and instance.state != ServeState.ERROR:
            if instance.desired == "serving":
                return Status.SERVING if instance.state == ServeState.SERVING else Status.STARTING
            if instance.state != ServeState.STOPPED:
                return Status.STOPPING
        lead = self.lead
        return lead.status if lead is not None else CopyStatus.ERROR

    @property
    def error(self) -> str:
        lead = self.lead
        if lead is None:
            return "No node holds this model's file any more."
        if lead.status != CopyStatus.ERROR and self.serve_failed:
            return self.served.error
        return lead.error

    @property
    def is_available(self) -> bool:
        """Its files are complete and verified on at least one node."""
        return any(c.status == CopyStatus.READY for c in self.copies.all())

    @property
    def serve_failed(self) -> bool:
        """Its llama-server died or could not start (its files, and their sharing, are unaffected)."""
        instance = self.served
        return instance is not None and instance.state == ServeState.ERROR

    @property
    def seeding(self) -> bool:
        """Some ready copy is shared."""
        return any(c.seeding and c.status == CopyStatus.READY for c in self.copies.all())

    @property
    def note(self) -> str:
        lead = self.lead
        return lead.note if lead is not None else ""

    @property
    def download_progress(self) -> float:
        lead = self.lead
        return lead.download_progress if lead is not None else 0.0

    def _sum(self, field: str) -> int:
        return sum(getattr(c, field) for c in self.copies.all())

    download_rate = property(lambda self: self._sum("download_rate"))
    upload_rate = property(lambda self: self._sum("upload_rate"))
    downloaded_bytes = property(lambda self: self._sum("downloaded_bytes"))
    uploaded_bytes = property(lambda self: self._sum("uploaded_bytes"))
    peers = property(lambda self: self._sum("peers"))
    seeds = property(lambda self: self._sum("seeds"))
    peer_bytes = property(lambda self: self._sum("peer_bytes"))
    web_seed_bytes = property(lambda self: self._sum("web_seed_bytes"))
    http_bytes = property(lambda self: self._sum("http_bytes"))

    @property
    def share_ratio(self) -> float:
        base = self.downloaded_bytes or self.size
        return round(self.uploaded_bytes / base, 3) if base else 0.0


class ModelCopy(models.Model):
    """A model's files on one node: where they are, how far their download is, what they moved, and
    whether that node shares them."""

    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="copies")
    node = models.CharField(max_length=200, db_index=True)
    path = models.CharField(max_length=1000, blank=True, help_text="Absolute folder holding the model's files")
    status = models.CharField(max_length=20, choices=CopyStatus.choices, default=CopyStatus.QUEUED, db_index=True)
    error = models.TextField(blank=True)
    # What a download that moves no bytes yet waits for (another node or portal fetching the same file).
    note = models.CharField(max_length=300, blank=True)
    # A Hub fetch that other nodes of this group wait on is passed on to them in segments while it runs
    # (torrents_app.relay): the relay item naming them (hex), while this node seeds them.
    relay = models.TextField(blank=True)
    # Transfer figures (HF download or BitTorrent), written by whoever moves the bytes.
    download_progress = models.FloatField(default=0)
    download_rate = models.BigIntegerField(default=0)
    upload_rate = models.BigIntegerField(default=0)
    downloaded_bytes = models.BigIntegerField(default=0)
    uploaded_bytes = models.BigIntegerField(default=0)
    peers = models.IntegerField(default=0)
    seeds = models.IntegerField(default=0)
    # Where the downloaded bytes came from: other peers, web seeds (BEP 19, the Hub's URL in the
    # torrent), plain HTTP from the Hub.
    peer_bytes = models.BigIntegerField(default=0)
    web_seed_bytes = models.BigIntegerField(default=0)
    http_bytes = models.BigIntegerField(default=0)
    seeding = models.BooleanField(default=True, help_text="Desired: seed these files when they are ready")
    # Bookkeeping for a Hub download job
    task_id = models.CharField(max_length=64, blank=True)
    cancel_requested = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "created_at"]
        constraints = [models.UniqueConstraint(fields=["model", "node"], name="one_copy_per_node")]
        verbose_name_plural = "model copies"

    def __str__(self) -> str:
        return f"{self.model_id}@{self.node} ({self.status})"


class ModelFile(models.Model):
    """One file of a model (split GGUF models have several parts)."""

    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="files")
    name = models.CharField(max_length=500, help_text="Path relative to the model's folder")
    size = models.BigIntegerField(default=0)
    sha256 = models.CharField(max_length=64, blank=True, help_text="Expected sha256 (from the Hub) or measured")
    downloaded_bytes = models.BigIntegerField(default=0)
    verified = models.BooleanField(default=False)
    url = models.URLField(max_length=1000, blank=True, help_text="Resolve URL at the pinned revision")

    class Meta:
        ordering = ["model", "name"]
        constraints = [models.UniqueConstraint(fields=["model", "name"], name="unique_model_file")]

    def __str__(self) -> str:
        return f"{self.model_id}/{self.name}"


class ServeState(models.TextChoices):
    STOPPED = "stopped"
    STARTING = "starting"
    SERVING = "serving"
    STOPPING = "stopping"
    ERROR = "error"


_INSTANCE_RANK = {ServeState.SERVING: 0, ServeState.STARTING: 1, ServeState.STOPPING: 2, ServeState.ERROR: 3,
                  ServeState.STOPPED: 4}


def _instance_rank(instance: ServedInstance) -> tuple[int, int]:
    """Serving and wanted first (a wanted one that is still stopped is about to start)."""
    return (0 if instance.desired == "serving" else 1, _INSTANCE_RANK.get(instance.state, 5))


# In the model object, a copy or instance on a node that stopped heartbeating is `offline` (SPEC §9).
COPY_STATUSES = [*CopyStatus.values, "offline"]
INSTANCE_STATUSES = [*ServeState.values, "offline"]


class ServedInstance(models.Model):
    """A llama-server for a model on one node: the desired state written by services, the actual one by that
    node's daemon (moves in `models_app.states.INSTANCE_MOVES`)."""

    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="instances")
    node = models.CharField(max_length=200, db_index=True)
    desired = models.CharField(max_length=20, choices=[("serving", "serving"), ("stopped", "stopped")], default="serving")
    state = models.CharField(max_length=20, choices=ServeState.choices, default=ServeState.STOPPED)
    requested_port = models.IntegerField(null=True, blank=True)
    port = models.IntegerField(null=True, blank=True)
    # Where it listens (its node's NODE_ADDRESS) and the one key it accepts: written by the node at each
    # start, held only here, sent by the portal with every request (SPEC §9).
    host = models.CharField(max_length=200, blank=True)
    api_key = models.CharField(max_length=100, blank=True)
    pid = models.IntegerField(null=True, blank=True)
    context_size = models.IntegerField(default=2048)
    threads = models.IntegerField(default=4)
    gpu_layers = models.IntegerField(default=0)
    log_path = models.CharField(max_length=1000, blank=True)
    error = models.TextField(blank=True)
    restarts = models.IntegerField(default=0)
    next_start_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    # Tokens generated for the portal's front doors since the model was first served here (GET /metrics).
    tokens_generated = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["model", "node"]
        constraints = [models.UniqueConstraint(fields=["model", "node"], name="one_instance_per_node")]

    def __str__(self) -> str:
        return f"{self.model_id}@{self.node} ({self.state})"

    @property
    def url(self) -> str:
        return server_url(self.host or "127.0.0.1", self.port) if self.port else ""


class FileRemoval(models.Model):
    """Files a node's daemon is to delete: those of a copy on that node whose model was deleted with its
    files from another machine (only that node can reach its disk)."""

    node = models.CharField(max_length=200, db_index=True)
    folder = models.CharField(max_length=1000)
    names = models.JSONField(default=list)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.node}:{self.folder}"


class TransferSample(models.Model):
    """A copy's transfer rates and peers at one moment; its node daemon writes one every heartbeat
    while something moves, and keeps the last hour (the model page draws them)."""

    model = models.ForeignKey(AIModel, on_delete=models.CASCADE, related_name="transfer_samples")
    node = models.CharField(max_length=200, blank=True, db_index=True)
    at = models.DateTimeField(db_index=True)
    download_rate = models.BigIntegerField(default=0)
    upload_rate = models.BigIntegerField(default=0)
    peers = models.IntegerField(default=0)

    class Meta:
        ordering = ["at"]


def server_url(host: str, port: int) -> str:
    """The base URL of a llama-server on `host` (an IPv6 address in brackets)."""
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
