"""Structural check of compose.yaml: the compose-spec JSON schema (vendored in compose-spec.schema.json, from PyPI
docker-compose 1.29.2's compose/config/compose_spec.json), plus what the schema cannot say: every service the design
needs is there, with a health check where others wait on it, the GPU worker reserves a GPU, only the API is
published beyond loopback by default, and no secret is written in the file: each comes from .env, and .env.example
names every one."""
import json
import pathlib
import re
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
REQUIRED = ["postgres", "temporal", "temporal-ui", "minio", "minio-init", "api", "pipeline-worker", "gpu-worker"]
PUBLIC = {"api"}  # every other published port binds to loopback unless .env says otherwise
LOOPBACK = re.compile(r"^(127\.0\.0\.1|\$\{[A-Z0-9_]+:-127\.0\.0\.1\}):")
SECRET_NAME = re.compile(r"PASSWORD|SECRET|PWD|ACCESS_KEY|ROOT_USER")
REQUIRED_VARIABLE = re.compile(r"\$\{([A-Z0-9_]+):\?[^}]*\}")


def exposure_and_secrets(compose: dict, text: str) -> list:
    problems = []
    for name, service in compose.get("services", {}).items():
        for port in service.get("ports", []):
            if name not in PUBLIC and not LOOPBACK.match(str(port)):
                problems.append(f"services.{name}.ports: {port} is published on every interface; bind it to "
                                "127.0.0.1 (or ${VAR:-127.0.0.1}) and put an authenticating proxy in front")
        environment = service.get("environment") or {}
        for key, value in (environment.items() if isinstance(environment, dict) else []):
            value = str(value)
            secret = SECRET_NAME.search(key) or "password=" in value
            if secret and not REQUIRED_VARIABLE.search(value):
                problems.append(f"services.{name}.environment.{key}: a secret written in the file; take it from "
                                ".env as ${NAME:?set it in .env}")
    example = (ROOT / ".env.example").read_text() if (ROOT / ".env.example").exists() else ""
    defined = set(re.findall(r"^([A-Z0-9_]+)=", example, re.MULTILINE))
    for variable in sorted(set(REQUIRED_VARIABLE.findall(text)) - defined):
        problems.append(f".env.example: {variable} is required by compose.yaml but not listed")
    return problems


def main() -> int:
    text = (ROOT / "compose.yaml").read_text()
    compose = yaml.safe_load(text)
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
    problems += exposure_and_secrets(compose, text)
    for problem in problems:
        print(problem)
    print(f"compose.yaml: {len(services)} services, {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
