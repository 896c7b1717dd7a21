"""Routing (SPEC §9): with a model served on several nodes, each request goes to the instance with the
fewest requests in flight (of equals, the one chosen longest ago), never to a node that is offline; with
none left, 503 `model_unavailable` naming the nodes. Real rows and heartbeats, the portal's own chooser."""
from __future__ import annotations

import socket
import uuid

import pytest
from django.utils import timezone

from aiportal.errors import Conflict, Unavailable
from aiportal.models import Node
from aiportal.nodes import node_heartbeat
from chat import llm
from models_app.models import ModelCopy, ServedInstance, ServeState, Source
from models_app.states import instance_move
from tests.factories import model_make

pytestmark = pytest.mark.django_db
GIB = 1024 ** 3


def _heartbeat(name: str, address: str) -> None:
    node_heartbeat(name=name, address=address, facts={"cpus": 4, "memory_total": 16 * GIB, "memory_free": 8 * GIB,
                                                      "disk_free": 100 * GIB, "model_dir": f"/srv/{name}"},
                   starting=True)


@pytest.fixture
def served_twice(monkeypatch):
    """A model with a copy and a serving instance on each of n1 (10.0.0.1) and n2 (10.0.0.2)."""
    _heartbeat("n1", "10.0.0.1")
    _heartbeat("n2", "10.0.0.2")
    model = model_make(id="twice", name="twice", source=Source.LOCAL, file_name="m.gguf", size=GIB, node="n1",
                       path="/srv/n1/twice")
    ModelCopy.objects.create(model=model, node="n2", path="/srv/n2/twice", status="ready")
    for n in (1, 2):
        ServedInstance.objects.create(model=model, node=f"n{n}", desired="serving", state=ServeState.SERVING,
                                      host=f"10.0.0.{n}", port=8000 + n, api_key=f"key-{n}",
                                      last_used_at=timezone.now())
    # This test's requests only, counted in the suite's Redis as every front door of a group counts them.
    monkeypatch.setattr(llm, "in_flight", llm.InFlight(prefix=f"test:{uuid.uuid4().hex}"))
    return model


def test_a_request_goes_to_the_instance_with_fewest_in_flight(served_twice):
    first = llm.model_endpoint(model_id="twice")
    second = llm.model_endpoint(model_id="twice")  # the first is still being answered
    assert {first.node, second.node} == {"n1", "n2"}
    assert (first.url, first.key) == (f"http://10.0.0.{first.node[1]}:800{first.node[1]}", f"key-{first.node[1]}")

    llm.request_done(second, tokens=3)
    third = llm.model_endpoint(model_id="twice")
    assert third.node == second.node  # the first one is still busy
    assert llm.in_flight.count(first.slot) == 1 and llm.in_flight.count(third.slot) == 1
    llm.request_done(first)
    llm.request_done(third)
    assert ServedInstance.objects.get(pk=second.instance_id).tokens_generated == 3


def test_two_front_doors_count_each_others_requests(served_twice):
    """Two daphnes of a group (here two counters that share nothing but Redis) route as one."""
    prefix = llm.in_flight.prefix
    door_a, door_b = llm.in_flight, llm.InFlight(prefix=prefix)
    first = llm.model_endpoint(model_id="twice")  # through door a, still being answered
    llm.in_flight = door_b
    second = llm.model_endpoint(model_id="twice")
    assert second.node != first.node
    assert door_b.count(first.slot) == 1 and door_a.count(second.slot) == 1
    llm.request_done(first)  # a lease can be given back through any door
    assert door_a.count(first.slot) == 0
    assert llm.model_endpoint(model_id="twice").node == first.node
    llm.in_flight = door_a


def test_without_redis_each_front_door_counts_alone_and_says_so(served_twice, monkeypatch, caplog):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]  # nothing listens here once the probe is closed
    monkeypatch.setattr(llm, "in_flight", llm.InFlight(redis_url=f"redis://127.0.0.1:{closed}/0"))
    first = llm.model_endpoint(model_id="twice")
    second = llm.model_endpoint(model_id="twice")
    assert {first.node, second.node} == {"n1", "n2"}
    assert "requests in flight are counted in this process only for 30 s" in caplog.text
    assert llm.in_flight.count(first.slot) == 1
    llm.request_done(first)
    assert llm.in_flight.count(first.slot) == 0


def test_requests_one_at_a_time_take_turns(served_twice):
    nodes = []
    for _ in range(4):
        endpoint = llm.model_endpoint(model_id="twice")
        nodes.append(endpoint.node)
        llm.request_done(endpoint)
    assert nodes[0] != nodes[1] and nodes[:2] == nodes[2:]


def test_an_offline_node_gets_no_requests_and_with_none_left_it_is_503_naming_them(served_twice):
    Node.objects.filter(name="n2").update(stopped=True)
    assert {llm.model_endpoint(model_id="twice").node for _ in range(3)} == {"n1"}

    Node.objects.filter(name="n1").update(stopped=True)
    with pytest.raises(Unavailable) as raised:
        llm.model_endpoint(model_id="twice")
    assert raised.value.code == "model_unavailable" and raised.value.status == 503
    assert "node n1, n2" in raised.value.message and raised.value.extra == {"node": "n1", "nodes": ["n1", "n2"]}


def test_an_instance_still_loading_gets_no_requests(served_twice):
    ServedInstance.objects.filter(node="n1").update(state=ServeState.STARTING)
    assert {llm.model_endpoint(model_id="twice").node for _ in range(3)} == {"n2"}
    ServedInstance.objects.filter(node="n2").update(desired="stopped")
    with pytest.raises(Conflict) as raised:
        llm.model_endpoint(model_id="twice")
    assert raised.value.code == "model_not_serving"


def test_an_instance_moves_only_as_its_table_allows(served_twice):
    rows = ServedInstance.objects.filter(model_id="twice", node="n1")
    assert instance_move(rows, ServeState.STOPPING) == 1
    assert instance_move(rows, ServeState.SERVING) == 0  # going: it cannot come back without a start
    assert rows.get().state == ServeState.STOPPING
    assert instance_move(rows, ServeState.STOPPED) == 1 and instance_move(rows, ServeState.STARTING) == 1
    with pytest.raises(ValueError):
        instance_move(rows, "offline")  # shown in the model object, never stored
