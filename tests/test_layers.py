"""Dependencies run one way: the model core ← torrents ← the hub, serving and the web pages ← chat ← the bot.

Every import of the portal's packages is read from the source (at module level and inside functions),
so a new import that runs the wrong way fails here, named, before it can make a cycle.
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("aiportal", "chat", "models_app", "torrents_app", "telegram_bot")
# What a model is, its copies and instances, their states, and the selectors over them.
CORE = ("models_app.models", "models_app.states", "models_app.services", "models_app.selectors",
        "models_app.placement", "models_app.gguf_meta", "models_app.hashing", "models_app.signals",
        "models_app.demo", "models_app.consumers", "models_app.inference.memory")
UPPER = ("models_app.hub", "models_app.inference", "models_app.views", "models_app.api", "models_app.urls",
         "models_app.web_urls", "models_app.forms", "models_app.admin")
RULES = [  # (modules, what none of them may import)
    (CORE, ("torrents_app", "chat", "telegram_bot") + UPPER),
    (("torrents_app",), ("chat", "telegram_bot") + UPPER),
    (("models_app",), ("chat", "telegram_bot")),
    (("chat",), ("telegram_bot",)),
]


def _modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            found[name] = path
    return found


def _imports(path: Path) -> list[tuple[int, str]]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return names


def _under(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


@pytest.mark.parametrize("modules, forbidden", RULES, ids=[rule[0][0] for rule in RULES])
def test_it_imports_only_downwards(modules, forbidden):
    wrong = [f"{name}:{line} imports {imported}" for name, path in sorted(_modules().items()) if _under(name, modules)
             for line, imported in _imports(path)
             if _under(imported, forbidden) and not _under(imported, CORE)]
    assert wrong == []


def test_no_import_is_guarded_by_import_error():
    guarded = [f"{name}:{node.lineno}" for name, path in sorted(_modules().items())
               for node in ast.walk(ast.parse(path.read_text()))
               if isinstance(node, ast.ExceptHandler) and isinstance(node.type, ast.Name)
               and node.type.id in {"ImportError", "ModuleNotFoundError"}]
    assert guarded == []
