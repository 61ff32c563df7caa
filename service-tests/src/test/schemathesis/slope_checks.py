"""schemathesis hooks for SchemathesisTest.

- every 4xx answer of the API must be an RFC 9457 problem document (application/problem+json with type, title, status
  and detail), and its status must be the response's;
- another user's run is not found: every request schemathesis makes about one of alice's runs is sent again with
  bob's token; bob's answer must be the one he gets for a run that does not exist (a 404, or the 400 of a request that
  is wrong whatever the run), never a 2xx, 403 or 5xx, and alice's run must be unchanged after it;
- in the stateful phase (SLOPE_VALID_SPEC set), submitted bodies that are objects become that valid tiny spec, so that
  runs are created and the OpenAPI links lead from them to every operation on a run.
"""
import json
import os
import uuid

import requests
import schemathesis

TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}


@schemathesis.check
def client_errors_are_problem_json(ctx, response, case):
    if not 400 <= response.status_code < 500:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    if not content_type.startswith("application/problem+json"):
        raise AssertionError(f"{response.status_code} answered with Content-Type {content_type!r}, not "
                             "application/problem+json")
    problem = json.loads(response.content)
    missing = [k for k in ("type", "title", "status", "detail") if k not in problem]
    if missing:
        raise AssertionError(f"problem document lacks {missing}: {problem}")
    if problem["status"] != response.status_code:
        raise AssertionError(f"problem status {problem['status']} differs from the response's "
                             f"{response.status_code}")
    return None


def _alice_detail(base, run_id):
    return requests.get(f"{base}/api/v1/runs/{run_id}", timeout=30,
                        headers={"Authorization": "Bearer " + os.environ["SLOPE_ALICE_TOKEN"]})


@schemathesis.check
def other_users_run_is_not_found(ctx, response, case):
    bob = os.environ.get("SLOPE_BOB_TOKEN")
    run_id = (case.path_parameters or {}).get("id")
    if not bob or run_id is None:
        return None
    base = os.environ["SLOPE_BASE"]
    before = _alice_detail(base, run_id)
    if before.status_code != 200:
        return None  # not one of alice's runs (any more): nothing of hers to reach
    as_bob = case.call(base_url=base, headers={"Authorization": "Bearer " + bob})
    stranger = case.derive()
    stranger.path_parameters = {**case.path_parameters, "id": str(uuid.uuid4())}
    no_such_run = stranger.call(base_url=base, headers={"Authorization": "Bearer " + bob})
    what = f"{case.method} {case.formatted_path} with bob's token on alice's run {run_id}"
    if as_bob.status_code < 400 or as_bob.status_code == 403 or as_bob.status_code >= 500:
        raise AssertionError(f"{what}: {as_bob.status_code} {as_bob.text[:500]}")
    if as_bob.status_code != no_such_run.status_code:
        raise AssertionError(f"{what}: {as_bob.status_code}, but {no_such_run.status_code} for a run that does not "
                             f"exist: the answer tells bob that alice's run exists\n{as_bob.text[:500]}")
    log = os.environ.get("SLOPE_REPLAY_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{case.method} {case.path} {as_bob.status_code}\n")
    after = _alice_detail(base, run_id)
    if after.status_code != 200:
        raise AssertionError(f"{what}: alice's run is gone afterwards ({after.status_code})")
    old, new = before.json(), after.json()
    if old.get("options") != new.get("options"):
        raise AssertionError(f"{what}: alice's run options changed from {old.get('options')} to {new.get('options')}")
    # What a request of bob's could change; the rest of a finished run's detail may still move on by itself (the
    # retention of a cancelled run's checkpoints, the cancellation's last events).
    moved = {k: (old.get(k), new.get(k)) for k in ("status", "stage", "stepsDone", "name", "ranks")
             if old.get(k) != new.get(k)}
    if old.get("status") in TERMINAL and moved:
        raise AssertionError(f"{what}: alice's finished run changed: {moved}\nbefore {old}\nafter  {new}")
    return None


@schemathesis.hook
def map_body(ctx, body):
    spec = os.environ.get("SLOPE_VALID_SPEC")
    if spec and ctx.operation is not None and ctx.operation.label == "POST /api/v1/runs" and isinstance(body, dict):
        return json.loads(spec)
    return body
