"""ugem/deploy/compose.yaml and Grafana's provisioning, checked without a Docker engine.

The compose file parses; its two gateway nodes are built from the repository's
Dockerfile, and the configuration each would run (the image's UGEM_ variables, then
the service's) loads through the config table, shares the Redis store and keeps its
own data volume; Redis keeps an fsynced append-only file; Prometheus scrapes both
nodes' admin ports; Grafana is provisioned with the data source its dashboards name.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from tests.support.monitoring import DEPLOY, GRAFANA, ROOT, dashboards, load_yaml, panels
from ugem.core.config import Config, load_config, parse_hostport

COMPOSE = load_yaml(DEPLOY / "compose.yaml")
SERVICES: dict[str, Any] = COMPOSE["services"]
GATEWAYS = ("gateway-a", "gateway-b")
STORE = "redis://redis:6379/0"


def image_env() -> dict[str, str]:
    """The UGEM_ variables the Dockerfile's ENV sets."""
    text = re.sub(r"\\\n\s*", " ", (ROOT / "Dockerfile").read_text(encoding="utf-8"))
    env_lines = [line for line in text.splitlines() if line.startswith("ENV ")]
    return dict(re.findall(r"(UGEM_\w+)=(\S+)", " ".join(env_lines)))


def config_of(service: str) -> Config:
    """The configuration a gateway service's container would load (ConfigError if bad)."""
    env = image_env() | {k: str(v) for k, v in SERVICES[service]["environment"].items()}
    return load_config(None, env=env)


def mounts(service: str) -> dict[str, str]:
    """target -> source of a service's volumes (short syntax; `:ro` dropped)."""
    pairs = (str(v).split(":")[:2] for v in SERVICES[service].get("volumes", []))
    return {target: source for source, target in pairs}


def published(service: str) -> dict[int, tuple[str, int]]:
    """container port -> (host address, host port) of a service's published ports."""
    out = {}
    for spec in SERVICES[service].get("ports", []):
        address, host, container = str(spec).split(":")
        out[int(container)] = (address, int(host))
    return out


def test_the_stack_has_two_gateways_redis_prometheus_and_grafana() -> None:
    assert set(SERVICES) == {"redis", *GATEWAYS, "prometheus", "grafana"}
    for name, service in SERVICES.items():
        if "build" not in service:
            image = str(service["image"])
            assert ":" in image and not image.endswith(":latest"), f"{name}: pin {image}"


@pytest.mark.parametrize("gateway", GATEWAYS)
def test_a_gateway_is_built_here_and_its_config_loads(gateway: str) -> None:
    service = SERVICES[gateway]
    context = (DEPLOY / service["build"]["context"]).resolve()
    assert context == ROOT and (context / service["build"]["dockerfile"]).is_file()
    config = config_of(gateway)  # every UGEM_ name is a key, every value within bounds
    assert config.store_url == STORE and "redis" in service["depends_on"]
    volumes = mounts(gateway)
    assert volumes[config.node.data_dir] == f"{gateway}-data"
    assert f"{gateway}-data" in COMPOSE["volumes"]
    ports = published(gateway)
    for listen in (config.smtp.listen, config.admin.listen):
        host, port = parse_hostport(listen)
        assert host == "0.0.0.0" and ports[port][0] == "127.0.0.1"


def test_the_gateways_differ_only_in_name_ports_and_volume() -> None:
    a, b = (config_of(g) for g in GATEWAYS)
    assert a.node.hostname != b.node.hostname and a.store_url == b.store_url
    assert set(mounts("gateway-a").values()).isdisjoint(mounts("gateway-b").values())
    host_ports = [port for g in GATEWAYS for _, port in published(g).values()]
    assert len(host_ports) == len(set(host_ports)) == 4


def test_redis_keeps_an_append_only_file_fsynced_every_second() -> None:
    command = " ".join(SERVICES["redis"]["command"])
    assert "--appendonly yes" in command and "--appendfsync everysec" in command
    assert mounts("redis")["/data"] in COMPOSE["volumes"]


def test_every_bind_mount_exists() -> None:
    for name in SERVICES:
        for target, source in mounts(name).items():
            if source.startswith("."):
                assert (DEPLOY / source).exists(), f"{name}: {source} (for {target}) is missing"


def test_prometheus_scrapes_both_gateways_admin_ports() -> None:
    config_dir = mounts("prometheus")["/etc/prometheus"]
    config = load_yaml(DEPLOY / config_dir / "prometheus.yml")
    assert "--config.file=/etc/prometheus/prometheus.yml" in SERVICES["prometheus"]["command"]
    [job] = [job for job in config["scrape_configs"] if job["job_name"] == "ugem"]
    targets = {t for static in job["static_configs"] for t in static["targets"]}
    ports = {g: parse_hostport(config_of(g).admin.listen)[1] for g in GATEWAYS}
    assert targets == {f"{SERVICES[g]['hostname']}:{port}" for g, port in ports.items()}


def test_grafana_is_provisioned_with_the_source_and_dashboards_it_shows() -> None:
    volumes = mounts("grafana")
    assert (DEPLOY / volumes["/etc/grafana/provisioning"]).resolve() == GRAFANA / "provisioning"
    [source] = load_yaml(GRAFANA / "provisioning/datasources/prometheus.yaml")["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    [provider] = load_yaml(GRAFANA / "provisioning/dashboards/ugem.yaml")["providers"]
    folder = provider["options"]["path"]
    assert (DEPLOY / volumes[folder]).resolve() == GRAFANA / "dashboards"
    home = SERVICES["grafana"]["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert Path(home).parent.as_posix() == folder and Path(home).name in dashboards()
    for name, dashboard in dashboards().items():
        for panel in panels(dashboard):
            if panel["type"] != "row":
                assert panel["datasource"]["uid"] == source["uid"], (name, panel["title"])


def test_the_dashboard_panels_are_laid_out_on_the_grid() -> None:
    for name, dashboard in dashboards().items():
        every = list(panels(dashboard))
        assert len({p["id"] for p in every}) == len(every), f"{name}: panel ids repeat"
        cells: set[tuple[int, int]] = set()
        for panel in every:
            grid = panel["gridPos"]
            assert grid["x"] + grid["w"] <= 24, (name, panel["title"])
            area = {
                (x, y)
                for x in range(grid["x"], grid["x"] + grid["w"])
                for y in range(grid["y"], grid["y"] + grid["h"])
            }
            assert cells.isdisjoint(area), f"{name}: {panel['title']} overlaps another"
            cells |= area
