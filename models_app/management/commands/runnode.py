"""Run this machine's node daemon (SPEC §2)."""
from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand

from aiportal.node import NodeDaemon, load_engines


class Command(BaseCommand):
    help = "Run the node daemon: the libtorrent session and every llama-server of this node."

    def handle(self, *args, **options):
        node = settings.NODE_NAME
        NodeDaemon(node_name=node, engines=load_engines(node), tick=settings.NODE_TICK_SECONDS).run()
