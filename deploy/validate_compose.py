"""Structural check of compose.yaml: the compose-spec JSON schema (vendored in compose-spec.schema.json, from PyPI
docker-compose 1.29.2's compose/config/compose_spec.json), plus what the schema cannot say: every service the design
needs is there, with a health check where others wait on it, and the GPU worker reserves a GPU."""
import json
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
REQUIRED = ["postgres", "temporal", "temporal-ui", "minio", "minio-init", "api", "pipeline-worker", "gpu-worker"]


def main() -> int:
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())
    schema = json.loads((ROOT / "deploy" / "compose-spec.schema.json").read_text())
    problems = [f"{'/'.join(map(str, e.path)) or '$'}: {e.message}"
                for e in jsonschema.Draft201909Validator(schema).iter_errors(compose)]
    services = compose.get("services", {})
    problems += [f"services: {name} is missing" for name in REQUIRED if name not in services]
    for name, service in services.items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            if condition.get("condition") == "service_healthy" and "healthcheck" not in services.get(dependency, {}):
                problems.append(f"services.{name}.depends_on.{dependency}: waits for health, but {dependency} "
                                "has no healthcheck")
    devices = (services.get("gpu-worker", {}).get("deploy", {}).get("resources", {}).get("reservations", {})
               .get("devices", []))
    if not any("gpu" in d.get("capabilities", []) for d in devices):
        problems.append("services.gpu-worker.deploy.resources.reservations.devices: no GPU reserved")
    for problem in problems:
        print(problem)
    print(f"compose.yaml: {len(services)} services, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
