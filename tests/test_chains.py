"""Chains through real workers and Redis: a child runs after its parent succeeds, given the result; a parent
that fails for good or is aborted ends its children as not run, with the reason; both views show the links."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from arq.connections import ArqRedis

from core import chains, codec, events, keys, wire
from core.chains import then
from core.enqueue import enqueue
from core.registry import Registry, load_registry
from core.worker.claim import Claim
from core.worker.outcome import Succeeded
from core.worker.record import Ran, Storage, write
from service.handle import InFlight, InvalidJobArguments, Jobs
from settings import Settings
from tests.conftest import TEST_JOB_MODULES, make_settings
from tests.support import workflow_jobs
from tests.support.waiting import wait_for
from tests.support.workflow_jobs import LEDGER, fetch_total, record_total, shout

MODULES = [*TEST_JOB_MODULES, "tests.support.workflow_jobs"]


@pytest.fixture
def settings(redis_server: Any) -> Settings:
    return make_settings(redis_server.url, job_modules=MODULES)


@pytest.fixture(autouse=True)
def clean_ledger() -> None:
    LEDGER.clear()


async def view(client: httpx.AsyncClient, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    return response.json()


def chained(
    order_id: int = 4, label: str = "a", grandchild: bool = False, parent: str = "fetch_total"
) -> dict[str, Any]:
    child: dict[str, Any] = {"function": "record_total", "kwargs": {"label": label}, "result_arg": "total"}
    if grandchild:
        child["then"] = [{"function": "shout", "kwargs": {"times": 2}, "result_arg": "text"}]
    return {"function": parent, "kwargs": {"order_id": order_id}, "then": [child]}


async def test_a_child_runs_after_its_parent_with_the_result(client: httpx.AsyncClient, run_burst_worker) -> None:
    response = await client.post("/v1/jobs", json=chained(4, grandchild=True))
    assert response.status_code == 202, response.text
    body = response.json()
    parent_id = body["job_id"]
    (child,) = body["children"]
    (grandchild,) = child["children"]
    assert child["function"] == "record_total" and child["result_arg"] == "total"
    assert grandchild["function"] == "shout"

    pending = await view(client, child["job_id"])
    assert pending["status"] == "pending" and pending["parent"] == parent_id
    assert pending["kwargs"] == {"label": "a"} and pending["result_arg"] == "total"
    assert (await view(client, grandchild["job_id"]))["status"] == "pending"

    await run_burst_worker()

    assert LEDGER == [("a", 40), ("shout", "a:40")]
    parent = await view(client, parent_id)
    assert parent["status"] == "complete" and parent["result"] == 40
    assert parent["children"] == [
        {"job_id": child["job_id"], "function": "record_total", "result_arg": "total", "children": []}
    ]
    done = await view(client, child["job_id"])
    assert done["status"] == "complete" and done["result"] == "a:40"
    assert done["parent"] == parent_id and done["kwargs"] == {"label": "a", "total": 40}
    assert [link["job_id"] for link in done["children"]] == [grandchild["job_id"]]
    last = await view(client, grandchild["job_id"])
    assert last["status"] == "complete" and last["result"] == "A:40A:40"
    assert last["parent"] == child["job_id"]


async def test_a_failed_parent_ends_its_children_as_not_run(
    client: httpx.AsyncClient, run_burst_worker, redis: ArqRedis
) -> None:
    response = await client.post("/v1/jobs", json=chained(7, grandchild=True, parent="explode"))
    assert response.status_code == 202, response.text
    parent_id = response.json()["job_id"]
    (child,) = response.json()["children"]
    grandchild_id = child["children"][0]["job_id"]

    await run_burst_worker()

    assert LEDGER == []
    assert (await view(client, parent_id))["status"] == "failed"
    for job_id, parent in ((child["job_id"], parent_id), (grandchild_id, child["job_id"])):
        ended = await view(client, job_id)
        assert ended["status"] == "not_run"
        assert ended["parent"] == parent
        assert f"its parent {parent_id} failed for good" in ended["reason"]
        assert "order 7 exploded" in ended["reason"]
    entries = await redis.xrange(events.job_stream(child["job_id"]))
    assert [entry[b"event"] for _, entry in entries] == [b"pending", b"not_run"]
    result = await client.get(f"/v1/jobs/{child['job_id']}/result")
    assert result.status_code == 200 and result.json()["status"] == "not_run"


async def test_an_aborted_queued_parent_ends_its_children(client: httpx.AsyncClient, run_burst_worker) -> None:
    body = {**chained(5), "defer_by": 60}
    response = await client.post("/v1/jobs", json=body)
    parent_id = response.json()["job_id"]
    child_id = response.json()["children"][0]["job_id"]
    refused = await client.post(f"/v1/jobs/{child_id}/abort")
    assert refused.status_code == 409 and refused.json()["detail"][0]["type"] == "chained_pending"

    aborted = await client.post(f"/v1/jobs/{parent_id}/abort")
    assert aborted.status_code == 200, aborted.text
    child = await view(client, child_id)
    assert child["status"] == "not_run" and child["reason"] == f"its parent {parent_id} was aborted"


async def test_a_parent_aborted_while_it_runs_ends_its_children(client: httpx.AsyncClient, running_worker) -> None:
    body = chained()
    body["function"], body["kwargs"] = "slow_total", {"order_id": 1, "seconds": 30}
    response = await client.post("/v1/jobs", json=body)
    parent_id = response.json()["job_id"]
    child_id = response.json()["children"][0]["job_id"]
    await wait_for(lambda: view(client, parent_id), lambda v: v["status"] == "in_progress")

    await client.post(f"/v1/jobs/{parent_id}/abort")

    child = await wait_for(lambda: view(client, child_id), lambda v: v["status"] == "not_run")
    assert child["reason"] == f"its parent {parent_id} was aborted"
    assert (await view(client, parent_id))["status"] == "aborted"


@pytest.mark.parametrize(
    ("entry", "loc", "type_"),
    [
        (
            {"function": "record_total", "kwargs": {"label": 5}, "result_arg": "total"},
            ["kwargs", "label"],
            "string_type",
        ),
        ({"function": "record_total", "kwargs": {}, "result_arg": "total"}, ["kwargs", "label"], "missing"),
        (
            {"function": "record_total", "kwargs": {"label": "a", "x": 1}, "result_arg": "total"},
            ["kwargs", "x"],
            "extra_forbidden",
        ),
        (
            {"function": "record_total", "kwargs": {"label": "a"}, "result_arg": "nope"},
            ["result_arg"],
            "unknown_argument",
        ),
        (
            {"function": "record_total", "kwargs": {"label": "a", "total": 1}, "result_arg": "total"},
            ["kwargs", "total"],
            "result_arg_given",
        ),
        ({"function": "shout", "kwargs": {}, "result_arg": "text"}, ["result_arg"], "result_type_mismatch"),
        ({"function": "no_such_job", "kwargs": {}, "result_arg": "x"}, ["function"], "unknown_function"),
    ],
)
async def test_a_bad_child_is_a_422_naming_the_field(
    client: httpx.AsyncClient, redis: ArqRedis, entry: dict[str, Any], loc: list[Any], type_: str
) -> None:
    body = {"function": "fetch_total", "kwargs": {"order_id": 1}, "then": [entry]}
    single = await client.post("/v1/jobs", json=body)
    assert single.status_code == 422, single.text
    assert single.json()["detail"][0]["loc"] == ["body", "then", 0, *loc]
    assert single.json()["detail"][0]["type"] == type_

    batch = await client.post("/v1/jobs/batch", json={"jobs": [chained(), body]})
    assert batch.status_code == 422, batch.text
    assert batch.json()["detail"][0]["loc"] == ["body", "jobs", 1, "then", 0, *loc]

    typed = await client.post("/v1/functions/fetch_total/jobs", json={"order_id": 1, "then": [entry]})
    assert typed.status_code == 422, typed.text
    assert typed.json()["detail"][0]["loc"] == ["body", "then", 0, *loc]
    assert await redis.zcard("arq:queue") == 0  # nothing written


async def test_a_bad_grandchild_is_named_by_its_path(client: httpx.AsyncClient) -> None:
    body = chained(grandchild=True)
    body["then"][0]["then"][0]["kwargs"] = {"times": "x"}
    response = await client.post("/v1/jobs", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "then", 0, "then", 0, "kwargs", "times"]


async def test_batch_and_typed_endpoints_take_then(client: httpx.AsyncClient, run_burst_worker) -> None:
    batch = await client.post("/v1/jobs/batch", json={"jobs": [chained(1, "b1"), chained(2, "b2")]})
    assert batch.status_code == 202, batch.text
    assert all(len(item["children"]) == 1 for item in batch.json()["accepted"])
    typed = await client.post(
        "/v1/functions/fetch_total/jobs",
        json={"order_id": 3, "then": [{"function": "record_total", "kwargs": {"label": "t"}, "result_arg": "total"}]},
    )
    assert typed.status_code == 202, typed.text
    child_id = typed.json()["children"][0]["job_id"]

    await run_burst_worker()

    assert sorted(LEDGER) == [("b1", 10), ("b2", 20), ("t", 30)]
    assert (await view(client, child_id))["result"] == "t:30"


async def test_python_chains_through_the_handle_and_from_a_job(
    settings: Settings, registry: Registry, redis: ArqRedis, client: httpx.AsyncClient, run_burst_worker
) -> None:
    jobs = Jobs(redis, registry, settings, InFlight())
    parent_id = await jobs.options(then=[then(record_total, "total", label="handle")]).enqueue(fetch_total, order_id=6)
    from_job = await enqueue(redis, registry.get("chain_from_job"), {"order_id": 8})
    with pytest.raises(InvalidJobArguments) as bad:
        await jobs.options(then=[then(shout, "text")]).enqueue(fetch_total, order_id=1)
    assert bad.value.errors[0]["loc"] == ["job", "then", 0, "result_arg"]

    await run_burst_worker()

    assert sorted(LEDGER) == [("from-job-8", 80), ("handle", 60)]
    parent = await view(client, parent_id)
    assert parent["children"][0]["function"] == "record_total"
    chained_id = (await view(client, from_job.job_id))["result"]
    assert (await view(client, chained_id))["children"][0]["result_arg"] == "total"


def test_workflow_jobs_register(settings: Settings) -> None:
    assert "fetch_total" in load_registry(settings).jobs
    assert workflow_jobs.build_report.__name__ == "build_report"


async def test_a_parent_that_dies_ends_its_children_and_a_requeue_runs_it_alone(
    client: httpx.AsyncClient, run_burst_worker, redis: ArqRedis
) -> None:
    body = chained(3)
    body["function"] = "explode"  # max_tries=1
    response = await client.post("/v1/jobs", json=body)
    parent_id = response.json()["job_id"]
    child_id = response.json()["children"][0]["job_id"]
    await redis.set(keys.retry(parent_id), 1)  # its one try was taken by a worker that died

    await run_burst_worker()

    parent = await view(client, parent_id)
    assert parent["status"] == "failed" and parent["error"]["kind"] == "worker_lost"
    child = await view(client, child_id)
    assert child["status"] == "not_run" and "its worker stopped while running it" in child["reason"]

    requeued = await client.post("/v1/dead/requeue", json={"job_ids": [parent_id]})
    assert requeued.json()["requeued"] == [parent_id]
    await run_burst_worker()
    assert (await view(client, child_id))["status"] == "not_run"  # ended when its parent died; stays so
    assert LEDGER == []


async def test_a_stale_finish_enqueues_no_children(client: httpx.AsyncClient, redis: ArqRedis, registry) -> None:
    response = await client.post("/v1/jobs", json=chained(2))
    parent_id = response.json()["job_id"]
    child_id = response.json()["children"][0]["job_id"]
    payload = await redis.get(keys.job(parent_id))
    await redis.set(keys.in_progress(parent_id), "another-claim")  # someone else holds the job now
    stale = Claim(parent_id, 0, payload, 1, False, "our-lapsed-claim")
    made = chains.child_payloads(parent_id, wire.decode_job(payload, codec.loads).chain or [], b"20", 1)
    workflow: list[Any] = ["run", "", keys.wake("arq:queue")]
    for job_id, function, child_payload in made:
        workflow += [job_id, function, child_payload, 60_000]
    storage = Storage(result_px=60_000, keep_lease_px=None, dead_letter_px=None)

    written = await write(redis, "arq:queue", stale, Succeeded(None), storage, Ran("fetch_total", "", tuple(workflow)))

    assert written is False
    assert not await redis.exists(keys.job(child_id))
    assert (await view(client, child_id))["status"] == "pending"

    await redis.set(keys.in_progress(parent_id), "our-claim")
    held = Claim(parent_id, 0, payload, 1, False, "our-claim")
    assert await write(redis, "arq:queue", held, Succeeded(None), storage, Ran("fetch_total", "", tuple(workflow)))
    assert (await view(client, child_id))["status"] == "queued"
    assert (await view(client, child_id))["kwargs"] == {"label": "a", "total": 20}
