"""The Helm chart, rendered by the real `helm` binary and validated against Knative's CRD schemas."""

import copy
import json
import posixpath
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

from tests.conftest import ROOT

CHART = ROOT / "chart"
SCHEMAS = ROOT.parent / "shared" / "schemas" / "knative"
RESERVED_ENV = {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"}
RESERVED_PATHS = {"/", "/dev", "/dev/log", "/tmp", "/var", "/var/log"}  # Knative's webhook refuses mounts there
CONTAINER_FIELDS = {
    "name",
    "image",
    "imagePullPolicy",
    "ports",
    "env",
    "envFrom",
    "resources",
    "readinessProbe",
    "livenessProbe",
    "startupProbe",
    "securityContext",
    "args",
    "command",
    "workingDir",
    "volumeMounts",
    "terminationMessagePath",
    "terminationMessagePolicy",
}
REQUEST_TYPE = "dev.cifar10.classify.request"  # the type the README documents
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))


def helm(*args: str) -> subprocess.CompletedProcess:
    binary = shutil.which("helm")
    assert binary, "helm is not on PATH: run the tests through `make test`, which installs it"
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60)


def render(*args: str) -> list[dict]:
    result = helm("template", "cifar", str(CHART), "--namespace", "ml", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def strict(schema: dict) -> dict:
    """The CRD schema closed below its root: an object with listed properties takes no others, as in
    the API server's pruning and Knative's webhook (the root of some schemas omits apiVersion and kind)."""
    schema = copy.deepcopy(schema)
    stack = list(schema.values())
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


SCHEMA_FILES = {
    "Service": "serving.knative.dev_service_v1.json",
    "Trigger": "eventing.knative.dev_trigger_v1.json",
    "Broker": "eventing.knative.dev_broker_v1.json",
}


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.Draft7Validator]:
    return {
        kind: jsonschema.Draft7Validator(strict(json.loads((SCHEMAS / name).read_text())))
        for kind, name in SCHEMA_FILES.items()
    }


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def test_lint_strict_with_every_ci_values_file() -> None:
    for values in [None, *CI_VALUES]:
        result = helm("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=[v.stem for v in CI_VALUES])
def test_rendered_objects_pass_the_knative_schemas_and_webhook_rules(values: Path, validators) -> None:
    docs = render("-f", str(values))
    knative = [d for d in docs if d["apiVersion"].endswith("knative.dev/v1")]
    assert by_kind(knative, "Service")
    for doc in knative:
        errors = sorted(validators[doc["kind"]].iter_errors(doc), key=str)
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    (service,) = by_kind(docs, "Service")
    check_webhook_rules(service)


def check_webhook_rules(service: dict) -> None:
    template = service["spec"]["template"]
    (container,) = template["spec"]["containers"]
    assert set(container) <= CONTAINER_FIELDS, set(container) - CONTAINER_FIELDS
    (port,) = container["ports"]
    assert port["containerPort"] == 8080 and port["name"] in ("http1", "h2c")
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        if probe in container:
            assert "port" not in container[probe].get("httpGet", {}), probe
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/liveness"
    assert not {e["name"] for e in container["env"]} & RESERVED_ENV
    for mount in container.get("volumeMounts", []):
        assert posixpath.normpath(mount["mountPath"]) not in RESERVED_PATHS, mount
    annotations = template["metadata"]["annotations"]
    assert all(isinstance(v, str) for v in annotations.values())
    assert "autoscaling.knative.dev/min-scale" in annotations
    assert not any(k.startswith("autoscaling.knative.dev/") for k in service["metadata"].get("annotations", {}))
    assert not any(k in annotations for k in ("autoscaling.knative.dev/minScale", "autoscaling.knative.dev/maxScale"))
    template_labels = template["metadata"]["labels"]
    assert "helm.sh/chart" not in template_labels and "app.kubernetes.io/version" not in template_labels
    assert service["metadata"]["labels"]["helm.sh/chart"].startswith("cifar10-function-")


def test_defaults_are_a_gpu_service_that_scales_to_zero() -> None:
    (service,) = by_kind(render(), "Service")
    annotations = service["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert int(annotations["autoscaling.knative.dev/max-scale"]) > 0
    (container,) = service["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert container["image"].endswith(":0.1.0")
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["LOAD_MODE"] == "background" and env["REPLY_TYPE"] == "dev.cifar10.classify.response"
    assert env["REPLY_SOURCE"] == "/knative/cifar-cifar10-function"
    assert env["WORKERS"] == "1" and "OMP_NUM_THREADS" not in env  # one model copy per GPU
    assert env["FLIP_AVERAGE"] == "true"  # the model card's accuracy is the flip-averaged one
    assert container["securityContext"]["runAsNonRoot"] is True
    assert not by_kind(render(), "Trigger")


def test_cpu_only_has_no_gpu_limit_and_a_worker_per_core() -> None:
    (service,) = by_kind(render("-f", str(CHART / "ci" / "cpu-only-values.yaml")), "Service")
    (container,) = service["spec"]["template"]["spec"]["containers"]
    assert "nvidia.com/gpu" not in container["resources"]["limits"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["WORKERS"], env["OMP_NUM_THREADS"], env["DEVICE"]) == ("2", "1", "cpu")


def test_flip_average_can_be_turned_off() -> None:
    (service,) = by_kind(render("--set", "function.flipAverage=false"), "Service")
    env = {e["name"]: e["value"] for e in service["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["FLIP_AVERAGE"] == "false"


def test_digest_wins_over_tag() -> None:
    (service,) = by_kind(render("-f", str(CHART / "ci" / "digest-values.yaml")), "Service")
    image = service["spec"]["template"]["spec"]["containers"][0]["image"]
    assert image == "registry.example.com/ml/cifar10-function@sha256:" + "0123456789abcdef" * 4


def test_scheduling_fields_render_only_when_set() -> None:
    (plain,) = by_kind(render(), "Service")
    for field in ("nodeSelector", "tolerations", "affinity", "runtimeClassName", "priorityClassName"):
        assert field not in plain["spec"]["template"]["spec"]
    (gpu,) = by_kind(render("-f", str(CHART / "ci" / "gpu-scheduling-values.yaml")), "Service")
    spec = gpu["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "nvidia" and spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert spec["containers"][0]["startupProbe"]["httpGet"]["path"] == "/health/readiness"


def test_read_only_root_writes_to_an_empty_dir() -> None:
    (service,) = by_kind(render("-f", str(CHART / "ci" / "read-only-root-values.yaml")), "Service")
    spec = service["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "128Mi"}}]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert (env["TMPDIR"], env["PROMETHEUS_MULTIPROC_DIR"]) == ("/scratch", "/scratch/metrics")
    (plain,) = by_kind(render(), "Service")
    assert "volumes" not in plain["spec"]["template"]["spec"]
    assert "TMPDIR" not in {e["name"] for e in plain["spec"]["template"]["spec"]["containers"][0]["env"]}


def test_eventing_trigger_subscribes_the_service() -> None:
    docs = render("-f", str(CHART / "ci" / "eventing-values.yaml"))
    (service,), (trigger,) = by_kind(docs, "Service"), by_kind(docs, "Trigger")
    assert service["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    assert trigger["spec"]["broker"] == "images"
    assert trigger["spec"]["filter"]["attributes"]["type"] == REQUEST_TYPE
    assert trigger["spec"]["subscriber"]["ref"] == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "name": service["metadata"]["name"],
    }
    assert trigger["spec"]["delivery"]["deadLetterSink"]["ref"]["name"] == "dead-letters"
    (default_trigger,) = by_kind(render("--set", "trigger.enabled=true"), "Trigger")
    assert default_trigger["spec"]["filter"]["attributes"] == {"type": REQUEST_TYPE}


def test_helm_test_pod_posts_an_image() -> None:
    result = helm("template", "cifar", str(CHART), "--show-only", "templates/tests/test-predict.yaml")
    assert result.returncode == 0, result.stderr
    pod = yaml.safe_load(result.stdout)
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "--retry" in script and "cifar-cifar10-function.default.svc.cluster.local" in script


def test_notes_name_the_feature_flags_the_values_need() -> None:
    result = helm(
        "install",
        "cifar",
        str(CHART),
        "--dry-run=client",
        "-f",
        str(CHART / "ci" / "gpu-scheduling-values.yaml"),
        "--set",
        "tmpVolume.enabled=true",
    )
    assert result.returncode == 0, result.stderr
    for flag in (
        "kubernetes.podspec-volumes-emptydir",
        "kubernetes.podspec-nodeselector",
        "kubernetes.podspec-tolerations",
        "kubernetes.podspec-affinity",
        "kubernetes.podspec-runtimeclassname",
        "kubernetes.podspec-priorityclassname",
    ):
        assert flag in result.stdout
    assert "kubectl get ksvc" in result.stdout and "ce-type: dev.cifar10.classify.request" in result.stdout


BAD_VALUES = [
    (["--set", "autoscaling.minScale=-1"], "minScale"),
    (["--set", "autoscaling.maxScale=-2"], "maxScale"),
    (["--set", "timeoutSeconds=601"], "timeoutSeconds"),
    (["--set", "resources.limits.memory=4 gigs"], "memory"),
    (["--set", "resources.requests.cpu=lots"], "cpu"),
    (["--set", "unknownKey=1"], "unknownKey"),
    (["--set", "gpu.colour=green"], "colour"),
    (["--set", "autoscaling.minScale=5", "--set", "autoscaling.maxScale=2"], "minScale (5) is above"),
    (["--set", "autoscaling.metric=cpu"], "metric"),
    (["--set", "image.digest=latest"], "digest"),
    (
        ["--set", "trigger.enabled=true", "--set", "trigger.filter.attributes.type=dev.cifar10.classify.response"],
        "event loop",
    ),
    (["--set", "trigger.enabled=true", "--set", "trigger.filter.attributes.type=null"], "is empty"),
    (["--set", "gpu.enabled=false", "--set", "function.device=gpu"], "gpu.enabled is false"),
    (["--set", "extraEnv[0].name=PORT", "--set", "extraEnv[0].value=9"], "reserves PORT"),
    (["--set", "extraEnv[0].name=K_SERVICE", "--set", "extraEnv[0].value=x"], "K_SERVICE"),
    (["--set", "extraEnv[0].name=THREADS", "--set", "extraEnv[0].value=4"], "from function.threads"),
    (["--set", "function.workers=0"], "workers"),
    (["--set", "function.flipAverage=sometimes"], "flipAverage"),
    (["--set", "securityContext.readOnlyRootFilesystem=true"], "needs tmpVolume.enabled"),
    (["--set", "tmpVolume.sizeLimit=lots"], "sizeLimit"),
    (
        ["--set", "tmpVolume.enabled=true", "--set", "extraEnv[0].name=TMPDIR", "--set", "extraEnv[0].value=/x"],
        "points it at the emptyDir",
    ),
    (["--set", "responseStartTimeoutSeconds=300", "--set", "timeoutSeconds=100"], "must not exceed"),
]


@pytest.mark.parametrize("args, message", BAD_VALUES, ids=[m for _, m in BAD_VALUES])
def test_bad_values_fail_with_a_readable_message(args: list[str], message: str) -> None:
    result = helm("template", "cifar", str(CHART), *args)
    assert result.returncode != 0
    assert message in result.stderr, result.stderr
