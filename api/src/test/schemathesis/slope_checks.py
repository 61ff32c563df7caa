"""schemathesis hooks: every 4xx answer of the API must be an RFC 9457 problem document (application/problem+json
with type, title, status and detail), and its status must be the response's."""
import json

import schemathesis


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
