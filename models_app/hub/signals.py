"""Resume this node's downloads as soon as a q2 worker starts (after a crash or a restart)."""
from __future__ import annotations

import logging

from django.dispatch import receiver
from django_q.signals import post_spawn

from models_app.hub.services import downloads_reconcile, downloads_schedule_ensure

log = logging.getLogger(__name__)


@receiver(post_spawn, dispatch_uid="hub-downloads-resume")
def on_worker_spawned(sender, proc_name: str, **kwargs) -> None:
    try:
        downloads_schedule_ensure()
        downloads_reconcile()
    except Exception as exc:  # a worker must start even when the database is briefly unavailable
        log.warning("could not resume downloads: %s", exc)
