"""The deployment files (Dockerfile, deploy/compose.yaml, deploy/prometheus/prometheus.yml) hold what
README "Deploy" promises: two API replicas, the worker, PostgreSQL with pgvector, Redis, nginx,
Prometheus and Grafana, each with resource limits; secrets only from the environment; a multi-stage,
non-root image with a health check. Docker itself is not needed: `docker compose config` (or the
docker-compose v1 CLI) and `promtool check config` run when installed, else those two checks skip."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "deploy" / "compose.yaml"
SECRETS = ("KEFU_SECRET_KEY", "KEFU_AUDIT_KEYS", "POSTGRES_PASSWORD", "GRAFANA_ADMIN_PASSWORD")


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_every_service_is_there_with_limits() -> None:
    services = compose()["services"]
    assert {"kefu-1", "kefu-2", "worker", "postgres", "redis", "nginx", "prometheus", "grafana"} <= set(
        services
    )
    assert services["kefu-canary"]["profiles"] == ["canary"]  # only during a gray release
    for name, service in services.items():
        limits = service["deploy"]["resources"]["limits"]
        assert limits["cpus"] and limits["memory"], name
    assert "pgvector" in services["postgres"]["image"]
    assert services["kefu-1"]["environment"]["KEFU_KB_INDEX_BACKEND"] == "pgvector"
    assert services["kefu-canary"]["environment"]["KEFU_VERSION_LABEL"] == "canary"
    assert services["kefu-1"]["environment"]["KEFU_VERSION_LABEL"] == "stable"
    # only nginx is published to the world; the monitoring UIs stay on the host's loopback
    published = {name: s.get("ports", []) for name, s in services.items() if s.get("ports")}
    assert set(published) == {"nginx", "prometheus", "grafana"}
    assert all(p.startswith("127.0.0.1:") for name in ("prometheus", "grafana") for p in published[name])


def test_secrets_come_from_the_environment_and_are_required() -> None:
    text = COMPOSE.read_text()
    for secret in SECRETS:
        assert re.search(r"\$\{" + secret + r":\?", text), f"{secret} must be required (${{{secret}:?…}})"
    example = (ROOT / "deploy" / ".env.example").read_text()
    for secret in SECRETS:  # the example leaves each secret empty, so `up` stops until it is set
        assert re.search(rf"^{secret}=$", example, re.MULTILINE), secret
    ignored = (ROOT / ".gitignore").read_text()
    assert "deploy/.env" in ignored and "deploy/nginx/certs/" in ignored


def test_the_files_compose_mounts_exist_and_prometheus_scrapes_the_replicas() -> None:
    services = compose()["services"]
    for name in ("nginx", "prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), f"{name} mounts {source}, which does not exist"
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    targets = {t for job in scrape["scrape_configs"] for c in job["static_configs"] for t in c["targets"]}
    assert targets == {"kefu-1:8000", "kefu-2:8000", "kefu-canary:8000"}
    upstreams = (ROOT / "deploy" / "nginx" / "upstreams.conf").read_text()
    assert "kefu-1:8000" in upstreams and "kefu-2:8000" in upstreams


def test_the_image_is_multi_stage_non_root_with_a_health_check() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM .+ AS (\w+)$", dockerfile, re.MULTILINE)
    assert stages == ["build", "runtime"]
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert re.search(r"^USER kefu$", runtime, re.MULTILINE)
    assert "HEALTHCHECK" in runtime and "/healthz" in runtime
    assert "build-essential" not in runtime  # no compiler in the image that runs
    assert "install-local-model.sh" in dockerfile.split("AS runtime", 1)[0]  # the portable build, once
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    ignored = [line for line in lines if line and not line.startswith("#")]
    assert ignored[0] == "*" and "!src/" in ignored  # the context is the sources, never .venv or data


def compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_docker_compose_accepts_the_file(tmp_path: Path) -> None:
    cli = compose_cli()
    if cli is None:
        pytest.skip(
            "neither `docker compose` nor docker-compose is installed: the YAML checks above still ran"
        )
    env = tmp_path / "test.env"
    env.write_text("".join(f"{name}=value-{n}\n" for n, name in enumerate(SECRETS)))
    base = [*cli, "-f", str(COMPOSE), "--env-file"]
    result = subprocess.run(
        [*base, str(env), "--profile", "canary", "config"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    rendered = yaml.safe_load(result.stdout)
    assert rendered["services"]["kefu-2"]["environment"]["KEFU_DATABASE_URL"].startswith(
        "postgresql://kefu:value-"
    )
    (tmp_path / "empty.env").write_text("")
    missing = subprocess.run([*base, str(tmp_path / "empty.env"), "config"], capture_output=True, text=True)
    assert missing.returncode != 0
    assert "set KEFU_SECRET_KEY in deploy/.env" in missing.stderr  # the error names what to set


def test_prometheus_accepts_its_configuration() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus): run scripts/install-ops-tools.sh")
    config = ROOT / "deploy" / "prometheus" / "prometheus.yml"
    result = subprocess.run(
        [promtool, "check", "config", str(config)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
