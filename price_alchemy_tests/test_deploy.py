"""The deploy files, checked as far as this machine allows (no Docker engine, no cluster, no helm):
they parse; every command a container runs is one of the project's entry points with options it
accepts (and the code-server and webserver commands are run here for real, as the containers
would run them); every image target, file, port, ConfigMap and environment variable they name
exists; the Kubernetes manifests survive a strict round trip through the Kubernetes API models."""

from __future__ import annotations

import ast
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from price_alchemy_assets.defs.jobs import STEP_PODS, TRAINING_TAG
from price_alchemy_assets.devtools.local_servers import free_port
from price_alchemy_assets.settings import configuration_rows

from .conftest import REPO
from .serving import default_sigint, group_gone
from .test_production import production_env

DEPLOY = REPO / "deploy"
BIN = Path(sys.executable).parent
SERVICE = "price-alchemy-service"
OUR_ENTRY_POINTS = {"price-alchemy", "dagster", "dagster-webserver", "dagster-daemon", "mlflow"}
K8S_MODELS = {
    "Deployment": "V1Deployment",
    "Service": "V1Service",
    "HorizontalPodAutoscaler": "V2HorizontalPodAutoscaler",
    "PodDisruptionBudget": "V1PodDisruptionBudget",
    "ConfigMap": "V1ConfigMap",
}


def dockerfile_stages() -> dict[str, list[str]]:
    """Stage name -> its instructions (continuation lines joined)."""
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    stages: dict[str, list[str]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if match := re.match(r"FROM\s+(\S+)\s+AS\s+(\S+)", line, re.I):
            current = match.group(2)
            stages[current] = [f"BASE {match.group(1)}"]
        elif current:
            stages[current].append(line)
    return stages


def json_command(instruction: str) -> list[str]:
    return yaml.safe_load(instruction.split(None, 1)[1].split("CMD", 1)[-1].strip())


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())


def k8s_documents() -> list[dict]:
    return [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]


def helm_values() -> dict:
    return yaml.safe_load((DEPLOY / "helm" / "dagster-values.yaml").read_text())


def container_commands() -> list[tuple[str, list[str]]]:
    """Every command a container of ours runs: Dockerfile CMDs and HEALTHCHECKs, compose commands,
    Kubernetes container commands, and the Helm chart's code-server arguments."""
    commands = []
    for stage, instructions in dockerfile_stages().items():
        for instruction in instructions:
            if instruction.startswith("CMD") or instruction.startswith("HEALTHCHECK"):
                command = json_command(instruction)
                if command[:2] == ["sh", "-c"]:
                    command = shlex.split(command[2].removeprefix("exec "))
                commands.append((f"Dockerfile {stage}", command))
    for name, service in compose()["services"].items():
        if "build" in service:
            for command in (service.get("command"), (service.get("healthcheck") or {}).get("test")):
                if command:
                    commands.append((f"compose {name}", [c for c in command if c != "CMD"]))
    for doc in k8s_documents():
        if doc["kind"] == "Deployment":
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if "command" in container:
                    commands.append((f"k8s {doc['metadata']['name']}", container["command"]))
    for deployment in helm_values()["dagster-user-deployments"]["deployments"]:
        commands.append(("helm user code", ["dagster", "code-server", "start", *deployment["dagsterApiGrpcArgs"]]))
    return commands


def test_every_container_command_is_our_entry_point_with_options_it_accepts():
    commands = container_commands()
    assert len(commands) >= 12
    helps: dict[tuple[str, ...], str | None] = {}

    def help_of(words: tuple[str, ...]) -> str | None:
        if words not in helps:
            done = subprocess.run([str(BIN / words[0]), *words[1:], "--help"], capture_output=True, text=True)
            helps[words] = done.stdout if done.returncode == 0 else None
        return helps[words]

    for where, command in commands:
        executable = command[0]
        if executable == "python":  # health checks: a urllib call, checked by the HTTP tests
            assert command[1] == "-c" and "urllib.request.urlopen('http://127.0.0.1:" in command[2], where
            continue
        assert executable in OUR_ENTRY_POINTS, f"{where}: {executable} is not one of our entry points"
        words = (executable, *tuple(word for word in command[1:] if not word.startswith("-"))[:2])
        while help_of(words) is None:  # the longest subcommand path that has --help
            words = words[:-1]
        for option in (word for word in command if word.startswith("--")):
            assert option.split("=")[0] in help_of(words), f"{where}: `{' '.join(words)}` has no {option}"


def test_dockerfile_targets_run_as_a_non_root_user_with_health_checks():
    stages = dockerfile_stages()
    assert {"build", "runtime", "user-code", "dagster", "service", "mlflow"} <= set(stages)
    runtime = "\n".join(stages["runtime"])
    assert "USER app" in runtime and "--uid 10001" in runtime
    assert "requirements.lock" in "\n".join(stages["build"])  # the lock the tests install
    for target in ("user-code", "dagster", "service", "mlflow"):
        assert stages[target][0] == "BASE runtime", target
        assert any(i.startswith("HEALTHCHECK") for i in stages[target]), target
        assert not any(i.startswith("USER root") for i in stages[target]), target
    for stage in stages.values():
        for instruction in stage:
            if instruction.startswith("COPY") and "--from" not in instruction:
                for source in instruction.split()[1:-1]:
                    assert (REPO / source).exists(), f"COPY {source}: no such file"


def test_compose_services_reference_what_exists():
    spec = compose()
    stages = dockerfile_stages()
    example = dict(
        line.split("=", 1)
        for line in (DEPLOY / "env.example").read_text().splitlines()
        if "=" in line and line[0] != "#"
    )
    text = (DEPLOY / "docker-compose.yml").read_text()
    for variable, default in re.findall(r"(?<!\$)\$\{(\w+)(:?[-?][^}]*)?\}", text):
        assert variable in example or default.startswith((":-", "-")), f"${{{variable}}} is in no env file"
    assert not re.search(r"PASSWORD[ \t]*[:=][ \t]*['\"]?\w", (DEPLOY / "env.example").read_text()), "no secrets"
    assert all(f"${{{variable}" in text for variable in example), "every variable of the env file is used"
    expected = {"postgres", "dagster-user-code", "dagster-webserver", "dagster-daemon", "mlflow", "service"}
    assert expected <= set(spec["services"])
    assert {"elasticsearch", "filebeat", "kibana"} <= {
        n for n, s in spec["services"].items() if "elk" in s.get("profiles", [])
    }
    for name, service in spec["services"].items():
        if "build" in service:
            assert service["build"]["target"] in stages, name
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (DEPLOY / source).exists(), f"{name} mounts {source}: no such file"
        command = service.get("command") or []
        for mapping in service.get("ports", []):
            container_port = mapping.rsplit(":", 1)[-1]
            if "--port" in command:
                assert command[command.index("--port") + 1] == container_port, name
    for depends in (s.get("depends_on") or {} for s in spec["services"].values()):
        assert set(depends) <= set(spec["services"])


def names_the_code_reads() -> set[str]:
    """Every PRICE_ALCHEMY_* setting (settings.py), the DAGSTER_* names the package's code holds
    as whole string literals (docstrings and comments are not reads), and the `env:` entries of
    Dagster's instance and workspace files."""
    names = {variable for variable, _, _ in configuration_rows()}
    for path in (REPO / "price_alchemy_assets").rglob("*.py"):
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        names |= {
            node.value
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and node.value.startswith("DAGSTER_")
            and id(node) not in docstrings
        }
    for pattern in ("*.yaml", "deploy/dagster/*.yaml"):
        for path in REPO.glob(pattern):
            names |= set(re.findall(r"^\s*env: (\w+)\s*$", path.read_text(), re.M))
    return names


def test_every_setting_the_deploy_files_give_is_one_the_code_reads():
    """A misspelt variable in a compose service's environment or the ConfigMap would be silently ignored."""
    read = names_the_code_reads()
    environments = [service.get("environment") or {} for service in compose()["services"].values()]
    given = {key for environment in environments for key in environment if key.startswith(("PRICE_ALCHEMY", "DAGSTER"))}
    given |= {k for doc in k8s_documents() if doc["kind"] == "ConfigMap" for k in doc["data"]}
    assert len(given) > 20

    for variable in sorted(given):
        assert variable in read, f"{variable} is set by the deploy files but read nowhere"
    # the check can fail: a misspelling, or a prefix of a real setting, is no read
    assert "PRICE_ALCHEMY_DRIFT_PSI" in read and "DAGSTER_HOME" in read
    assert not {"PRICE_ALCHEMY_RELOAD_SECOND", "PRICE_ALCHEMY_SMTP_PASSWORDS", "PRICE_ALCHEMY_CLIENT_TIMEOUT"} & read


def test_kubernetes_manifests_round_trip_through_the_api_models():
    from kubernetes.client import ApiClient

    client = ApiClient()

    def strict(doc: dict) -> bool:
        """Unknown or misspelt fields are dropped by the model, so the round trip differs."""
        model = client._ApiClient__deserialize(doc, K8S_MODELS[doc["kind"]])
        return client.sanitize_for_serialization(model) == doc

    docs = k8s_documents()
    assert {d["kind"] for d in docs} == set(K8S_MODELS)
    for doc in docs:
        assert strict(doc), f"{doc['kind']} {doc['metadata']['name']} has fields Kubernetes does not know"
    misspelt = next(yaml.safe_load_all((DEPLOY / "k8s" / "service.yaml").read_text().replace("readiness", "readines")))
    assert not strict(misspelt)  # the check can fail

    by_kind = {(d["kind"], d["metadata"]["name"]): d for d in docs}
    service = by_kind[("Deployment", "price-alchemy-service")]
    container = service["spec"]["template"]["spec"]["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    labels = service["spec"]["template"]["metadata"]["labels"]
    assert by_kind[("PodDisruptionBudget", "price-alchemy-service")]["spec"]["selector"]["matchLabels"] == labels
    assert by_kind[("Service", "price-alchemy-service")]["spec"]["selector"] == labels
    hpa = by_kind[("HorizontalPodAutoscaler", "price-alchemy-service")]["spec"]
    assert hpa["scaleTargetRef"]["name"] == "price-alchemy-service" and hpa["metrics"][0]["resource"]["name"] == "cpu"
    config_maps = {d["metadata"]["name"] for d in docs if d["kind"] == "ConfigMap"}
    assert {ref["configMapRef"]["name"] for ref in container["envFrom"] if "configMapRef" in ref} <= config_maps


def test_helm_values_match_the_code_and_the_instance():
    values = helm_values()
    (deployment,) = values["dagster-user-deployments"]["deployments"]
    assert deployment["image"]["repository"].endswith("/user-code")
    args = deployment["dagsterApiGrpcArgs"]
    assert args[args.index("--module-name") + 1] == "price_alchemy_assets.definitions"
    config_maps = {d["metadata"]["name"] for d in k8s_documents() if d["kind"] == "ConfigMap"}
    assert {ref["name"] for ref in deployment["envConfigMaps"]} <= config_maps
    assert values["runLauncher"]["type"] == "K8sRunLauncher"
    queue = values["dagsterDaemon"]["runCoordinator"]["config"]["queuedRunCoordinator"]
    instance = yaml.safe_load((DEPLOY / "dagster" / "dagster.yaml").read_text())
    local = instance["run_coordinator"]["config"]["tag_concurrency_limits"]
    assert queue["tagConcurrencyLimits"] == local == [{"key": TRAINING_TAG, "limit": 1}]
    assert values["postgresql"]["enabled"] is False and values["generatePostgresqlPasswordSecret"] is False
    config = next(d for d in k8s_documents() if d["kind"] == "ConfigMap")["data"]
    assert config["PRICE_ALCHEMY_EXECUTOR"] == "k8s"
    # pods share no disk: asset values and models go through the bucket, each pod's /data is scratch
    assert config["PRICE_ALCHEMY_WAREHOUSE"] == "bigquery" and config["PRICE_ALCHEMY_GCS_BUCKET"]
    assert config["PRICE_ALCHEMY_MODEL_STORE"].startswith(f"gs://{config['PRICE_ALCHEMY_GCS_BUCKET']}/")
    service = next(d for d in k8s_documents() if (d["kind"], d["metadata"]["name"]) == ("Deployment", SERVICE))
    pod_volumes = [
        *deployment["volumes"],
        *values["runLauncher"]["config"]["k8sRunLauncher"]["volumes"],
        *service["spec"]["template"]["spec"]["volumes"],
    ]
    assert pod_volumes and all("emptyDir" in volume for volume in pod_volumes), pod_volumes


def test_k8s_executor_gives_every_step_its_own_sized_pod():
    probe = (
        "from price_alchemy_assets.definitions import defs, MAIN_JOB\n"
        "job = defs.resolve_job_def(MAIN_JOB)\n"
        "print(job.executor_def.name, *sorted(node.name for node in job.graph.node_defs))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PRICE_ALCHEMY_EXECUTOR": "k8s"},
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    executor, *steps = done.stdout.split()
    assert executor == "k8s" and set(steps) == set(STEP_PODS)
    wrong = subprocess.run(
        [sys.executable, "-c", probe],
        env={**os.environ, "PRICE_ALCHEMY_EXECUTOR": "k8"},
        capture_output=True,
        text=True,
    )
    assert wrong.returncode != 0 and "PRICE_ALCHEMY_EXECUTOR='k8'" in wrong.stderr


def test_ci_workflow_runs_the_same_test_command():
    workflow = yaml.safe_load((REPO / ".github" / "workflows" / "ci.yml").read_text())
    steps = workflow["jobs"]["test"]["steps"]
    assert any(step.get("run") == "bash .ci/run" for step in steps)
    assert "bash scripts/test.sh" in (REPO / ".ci" / "run").read_text()


@pytest.mark.postgres
@pytest.mark.slow
def test_the_containers_commands_serve_the_code_location_over_grpc(postgres_database, tmp_path):
    """The user-code and webserver containers' commands, run here (bound to 127.0.0.1): the
    webserver loads the code location from the gRPC server through deploy/dagster/workspace.yaml,
    on the production instance, and both health checks pass."""
    stages = dockerfile_stages()
    user_code = json_command(next(i for i in stages["user-code"] if i.startswith("CMD")))
    webserver = json_command(next(i for i in stages["dagster"] if i.startswith("CMD")))
    grpc_port, ui_port = free_port(), free_port()

    def here(command: list[str], port: int, workspace: Path | None = None) -> list[str]:
        replaced = {"0.0.0.0": "127.0.0.1", "4000": str(port), "3000": str(port)}
        command = [replaced.get(word, word) for word in command]
        if workspace:
            command[command.index("--workspace") + 1] = str(workspace)
        return [str(BIN / command[0]), *command[1:]]

    env = {
        **os.environ,
        **production_env(postgres_database, tmp_path),
        "DAGSTER_USER_CODE_HOST": "127.0.0.1",
        "DAGSTER_USER_CODE_PORT": str(grpc_port),
    }
    processes = []
    log = tmp_path / "containers.log"
    try:
        with open(log, "w") as out:
            for command in (
                here(user_code, grpc_port),
                here(webserver, ui_port, DEPLOY / "dagster" / "workspace.yaml"),
            ):
                processes.append(
                    subprocess.Popen(
                        command,
                        env=env,
                        stdout=out,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=default_sigint,
                    )
                )
        health = [str(BIN / "dagster"), "api", "grpc-health-check", "--host", "127.0.0.1", "--port", str(grpc_port)]
        nodes = None
        for _ in range(180):
            try:
                answer = httpx.post(
                    f"http://127.0.0.1:{ui_port}/graphql",
                    json={"query": "{ assetNodes { assetKey { path } } }"},
                    timeout=10,
                ).json()
                nodes = answer["data"]["assetNodes"]
                if nodes:
                    break
            except (httpx.HTTPError, KeyError, TypeError):
                pass
            time.sleep(1)
        assert nodes, log.read_text()[-3000:]
        assert {"/".join(n["assetKey"]["path"]) for n in nodes} >= {"raw_listings", "tuned_model", "champion"}
        assert subprocess.run(health, env=env, capture_output=True).returncode == 0
        assert httpx.get(f"http://127.0.0.1:{ui_port}/server_info", timeout=10).status_code == 200
    finally:
        for process in processes:
            process.send_signal(signal.SIGINT)
        for process in processes:
            try:
                process.wait(timeout=60)
            finally:
                if not group_gone(process.pid):
                    os.killpg(process.pid, signal.SIGKILL)
