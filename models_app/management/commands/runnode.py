"""Run this machine's node daemon (SPEC §2)."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from aiportal.locks import AlreadyRunning, hold_lock
from aiportal.node import NodeDaemon, load_engines


class Command(BaseCommand):
    help = "Run the node daemon: the libtorrent session and every llama-server of this node."

    def handle(self, *args, **options):
        node = settings.NODE_NAME
        try:
            lock = hold_lock(settings.RUN_DIR / f"node-{node}.lock")
        except AlreadyRunning as exc:
            # Two daemons of one node would fight over the same llama-servers and torrents.
            raise CommandError(f"the node daemon {node!r} is already running here (pid {exc.pid})") from None
        self.stdout.write(f"node daemon {node!r} (lock {lock.name})")
        NodeDaemon(node_name=node, engines=load_engines(node), tick=settings.NODE_TICK_SECONDS).run()
