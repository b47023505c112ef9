"""The Helm chart, rendered by the real `helm` binary: the ci/ matrix against Knative's CRD schemas,
what the defaults give, the GPU values, the `helm test` pod and the install notes.

The Knative webhook rules the chart enforces are in test_chart_knative_rules.py, the Trigger's loop
guard in test_chart_loop_guard.py.
"""

import base64
import copy
import json
import os
import posixpath
import re
import stat
import subprocess
from pathlib import Path

import jsonschema
import numpy as np
import pytest
import yaml

from function.config import Settings
from tests.chart_render import CHART, CI_VALUES, by_kind, container, env, helm, render, service, values_file
from tests.conftest import SHARED, SHIPPED, needs_shared

SCHEMAS = SHARED / "schemas" / "knative"
RESERVED_ENV = {"PORT", "K_SERVICE", "K_REVISION", "K_CONFIGURATION"}
# Serving k8s_validation.go reservedPaths (since 1.13 /tmp and /var are no longer reserved).
RESERVED_PATHS = {"/", "/dev", "/dev/log"}
# Serving fieldmask.go ContainerMask: the container fields Knative lets through.
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
SCHEMA_FILES = {
    "Service": "serving.knative.dev_service_v1.json",
    "Trigger": "eventing.knative.dev_trigger_v1.json",
    "Broker": "eventing.knative.dev_broker_v1.json",
}


def strict(schema: dict) -> dict:
    """The CRD schema closed below its root: an object with listed properties takes no others, as in
    the API server's pruning and Knative's webhook (the root of some schemas omits apiVersion and kind).
    Objects the CRD marks x-kubernetes-preserve-unknown-fields stay open, as the API server keeps them
    (the catalog's copy closes them anyway: the Trigger's delivery, open for delivery.timeout in
    eventing's config/core/resources/trigger.yaml)."""
    schema = copy.deepcopy(schema)
    stack = list(schema.values())
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            if node.get("x-kubernetes-preserve-unknown-fields"):
                node.pop("additionalProperties", None)
            elif "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return schema


@pytest.fixture(scope="module")
def validators() -> dict[str, jsonschema.Draft7Validator]:
    return {
        kind: jsonschema.Draft7Validator(strict(json.loads((SCHEMAS / name).read_text())))
        for kind, name in SCHEMA_FILES.items()
    }


def test_lint_strict_with_every_ci_values_file() -> None:
    for values in [None, *CI_VALUES]:
        result = helm("lint", "--strict", str(CHART), *(["-f", str(values)] if values else []))
        assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=[v.stem for v in CI_VALUES])
@needs_shared
def test_rendered_objects_pass_the_knative_schemas(values: Path, validators) -> None:
    docs = render("-f", str(values))
    knative = [d for d in docs if d["apiVersion"].endswith("knative.dev/v1")]
    assert by_kind(knative, "Service")
    for doc in knative:
        errors = sorted(validators[doc["kind"]].iter_errors(doc), key=str)
        assert not errors, [f"{list(e.path)}: {e.message}" for e in errors]
    (rendered,) = by_kind(docs, "Service")
    check_webhook_rules(rendered)


def check_webhook_rules(rendered: dict) -> None:
    """What Serving's webhook checks beyond the CRD schema, on a rendered Service (k8s_validation.go,
    fieldmask.go, annotation_validation.go, metadata_validation.go)."""
    template = rendered["spec"]["template"]
    (main,) = template["spec"]["containers"]
    assert set(main) <= CONTAINER_FIELDS, set(main) - CONTAINER_FIELDS
    (port,) = main["ports"]
    assert port["containerPort"] == 8080 and port["name"] in ("http1", "h2c")
    for probe in ("readinessProbe", "livenessProbe"):  # Knative probes these through queue-proxy's port
        assert "port" not in main[probe].get("httpGet", {}), probe
    if "startupProbe" in main:  # left as it is by Knative (deploy.go), so it names the container port
        assert main["startupProbe"]["httpGet"]["port"] == port["containerPort"]
    assert main["readinessProbe"]["httpGet"]["path"] == "/health/readiness"
    assert main["livenessProbe"]["httpGet"]["path"] == "/health/liveness"
    assert not {e["name"] for e in main["env"]} & RESERVED_ENV
    assert all(isinstance(e["value"], str) for e in main["env"] if "value" in e)
    for mount in main.get("volumeMounts", []):
        assert posixpath.normpath(mount["mountPath"]) not in RESERVED_PATHS, mount
    annotations = template["metadata"]["annotations"]
    assert all(isinstance(v, str) and "e+" not in v for v in annotations.values()), annotations
    assert "autoscaling.knative.dev/min-scale" in annotations
    activation = annotations.get("autoscaling.knative.dev/activation-scale")
    assert activation is None or int(activation) >= 2  # validateMinMaxScale
    assert not any(k.startswith("autoscaling.knative.dev/") for k in rendered["metadata"].get("annotations", {}))
    template_labels = template["metadata"]["labels"]
    assert "helm.sh/chart" not in template_labels and "app.kubernetes.io/version" not in template_labels
    assert rendered["metadata"]["labels"]["helm.sh/chart"].startswith("cifar10-function-")


def test_defaults_are_a_gpu_service_that_scales_to_zero_and_installs() -> None:
    docs = render()
    assert not by_kind(docs, "Trigger")
    (rendered,) = by_kind(docs, "Service")
    annotations = rendered["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/min-scale"] == "0"
    assert int(annotations["autoscaling.knative.dev/max-scale"]) > 0
    # Knative refuses activation-scale 1 (validateMinMaxScale): the defaults leave it unset.
    assert "autoscaling.knative.dev/activation-scale" not in annotations
    (main,) = rendered["spec"]["template"]["spec"]["containers"]
    assert main["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert main["image"] == "ghcr.io/example/cifar10-function:0.1.0"
    values = {e["name"]: e["value"] for e in main["env"]}
    assert values["LOAD_MODE"] == "background" and values["REPLY_TYPE"] == "dev.cifar10.classify.response"
    assert values["REPLY_SOURCE"] == "/knative/cifar-cifar10-function"
    assert values["FLIP_AVERAGE"] == "true"  # the model card's accuracy is the flip-averaged one
    assert values["GPU_MPS"] == "false"
    assert main["securityContext"]["runAsNonRoot"] is True


def test_default_resources_pay_for_the_workers_the_function_sizes_from_them() -> None:
    """WORKERS unset: the function sizes its workers from the CPU limit; the request equals the limit so
    the pod is given those cores, and 4 CPUs make the 4 workers one GPU serves without MPS."""
    main = container()
    assert "WORKERS" not in env() and "OMP_NUM_THREADS" not in env()
    assert main["resources"]["requests"]["cpu"] == main["resources"]["limits"]["cpu"] == "4"


def test_workers_and_omp_threads_render_only_when_set() -> None:
    values = env("--set", "function.workers=3", "--set", "function.ompThreads=1")
    assert (values["WORKERS"], values["OMP_NUM_THREADS"]) == ("3", "1")


ZERO_MEANT = ("dedupCacheBytes", "dedupTtlSeconds", "loadRetrySeconds", "shutdownTimeoutSeconds")


@pytest.mark.parametrize("key", ZERO_MEANT)
def test_a_zero_the_function_takes_as_meant_reaches_it(key: str) -> None:
    """dedupCacheBytes 0 keeps no replies, and so on: left out, the function's non-zero default would apply."""
    name = "".join(f"_{c}" if c.isupper() else c.upper() for c in key)
    assert env("--set", f"function.{key}=0")[name] == "0"
    assert getattr(Settings.from_env({name: "0"}), name.lower()) == 0  # the function takes it


def test_settings_the_new_server_dropped_are_gone() -> None:
    """THREADS and PROMETHEUS_MULTIPROC_DIR belonged to gunicorn and the per-process metrics files."""
    for values in [None, *CI_VALUES]:
        names = set(env(*(["-f", str(values)] if values else [])))
        assert not names & {"THREADS", "PROMETHEUS_MULTIPROC_DIR"}, values
    result = helm("template", "cifar", str(CHART), "--set", "function.threads=16")
    assert result.returncode != 0 and "threads" in result.stderr


def test_cpu_only_runs_the_cpu_variant_with_no_gpu_limit() -> None:
    main = container("-f", str(CHART / "ci" / "cpu-only-values.yaml"))
    assert "nvidia.com/gpu" not in main["resources"]["limits"]
    assert main["image"] == "ghcr.io/example/cifar10-function:0.1.0-cpu"
    assert main["resources"]["limits"]["cpu"] == "2"  # an unquoted number in the values file
    values = {e["name"]: e["value"] for e in main["env"]}
    assert (values["OMP_NUM_THREADS"], values["DEVICE"]) == ("1", "cpu") and "WORKERS" not in values


def test_gpu_disabled_never_deploys_the_gpu_image_unless_told_to() -> None:
    """The GPU image cannot import mxnet-cu112 without a driver: an explicit tag or digest still wins."""
    assert container("--set", "gpu.enabled=false")["image"].endswith(":0.1.0-cpu")
    assert container("--set", "gpu.enabled=false", "--set", "image.tag=nightly-cpu")["image"].endswith(":nightly-cpu")
    digest = "sha256:" + "ab" * 32
    assert container("--set", "gpu.enabled=false", "--set", f"image.digest={digest}")["image"].endswith("@" + digest)


def test_flip_average_can_be_turned_off() -> None:
    assert env("--set", "function.flipAverage=false")["FLIP_AVERAGE"] == "false"


def test_idle_connections_outlive_queue_proxys_so_it_closes_them_first() -> None:
    """queue-proxy's transport (knative.dev/pkg/network, a clone of Go's DefaultTransport) drops idle
    connections after 90 s; a function closing them sooner races queue-proxy's next request."""
    assert float(env()["KEEPALIVE_TIMEOUT_SECONDS"]) > 90


def test_queue_proxy_gets_knatives_own_cpu_limit_unless_told_otherwise() -> None:
    def annotations(*args: str) -> dict[str, str]:
        return service(*args)["spec"]["template"]["metadata"]["annotations"]

    limit = "queue.sidecar.serving.knative.dev/cpu-resource-limit"
    assert annotations()[limit] == "1"
    assert annotations("--set", "queueProxy.cpuLimit=1500m")[limit] == "1500m"
    assert limit not in annotations("--set", "queueProxy.cpuLimit=")


def test_gpu_mps_is_passed_to_the_function() -> None:
    assert env("--set", "gpu.mps=true")["GPU_MPS"] == "true"


def test_digest_wins_over_tag() -> None:
    image = container("-f", str(CHART / "ci" / "digest-values.yaml"))["image"]
    assert image == "registry.example.com/ml/cifar10-function@sha256:" + "0123456789abcdef" * 4


def test_scheduling_fields_render_only_when_set() -> None:
    plain = service()["spec"]["template"]["spec"]
    for field in ("nodeSelector", "tolerations", "affinity", "runtimeClassName", "priorityClassName"):
        assert field not in plain
    spec = service("-f", str(CHART / "ci" / "gpu-scheduling-values.yaml"))["spec"]["template"]["spec"]
    assert spec["runtimeClassName"] == "nvidia" and spec["tolerations"][0]["key"] == "nvidia.com/gpu"
    assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    startup = spec["containers"][0]["startupProbe"]["httpGet"]
    # Knative fills in the liveness probe's port, not the startup probe's (Serving deploy.go
    # rewriteUserLivenessProbe), and Kubernetes refuses a Deployment whose probe has port 0
    assert startup == {"path": "/health/readiness", "port": spec["containers"][0]["ports"][0]["containerPort"]}


SUPPORTED = {"key": "nvidia.com/gpu.compute.major", "operator": "In", "values": ["5", "6", "7", "8"]}


def test_supported_architecture_is_added_to_every_node_selector_term() -> None:
    """Terms are ORed and a term's expressions ANDed, so the GPU rule goes into each term."""
    spec = service("-f", str(CHART / "ci" / "gpu-scheduling-values.yaml"))["spec"]["template"]["spec"]
    (term,) = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert term["matchExpressions"] == [
        {"key": "karpenter.sh/capacity-type", "operator": "In", "values": ["on-demand"]},
        SUPPORTED,
    ]
    alone = service(
        "--set", "gpu.requireSupportedArchitecture=true", "--set", "knative.features={kubernetes.podspec-affinity}"
    )["spec"]["template"]["spec"]["affinity"]
    assert alone == {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [{"matchExpressions": [SUPPORTED]}]}
        }
    }


def test_supported_architecture_leaves_preferences_and_pod_affinity_alone(tmp_path: Path) -> None:
    affinity = {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 1, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}}
            ]
        },
        "podAntiAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": []},
    }
    values = values_file(
        tmp_path,
        yaml.safe_dump(
            {
                "affinity": affinity,
                "gpu": {"requireSupportedArchitecture": True, "supportedComputeMajors": [7, 8]},
                "knative": {"features": ["kubernetes.podspec-affinity"]},
            }
        ),
    )
    rendered = service("-f", values)["spec"]["template"]["spec"]["affinity"]
    assert (
        rendered["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"]
        == (affinity["nodeAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"])
    )
    assert rendered["podAntiAffinity"] == affinity["podAntiAffinity"]
    required = rendered["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert required == [{"matchExpressions": [{**SUPPORTED, "values": ["7", "8"]}]}]


def test_read_only_root_writes_to_an_empty_dir() -> None:
    spec = service("-f", str(CHART / "ci" / "read-only-root-values.yaml"))["spec"]["template"]["spec"]
    (main,) = spec["containers"]
    assert main["securityContext"]["readOnlyRootFilesystem"] is True
    assert main["volumeMounts"] == [{"name": "scratch", "mountPath": "/scratch"}]
    assert spec["volumes"] == [{"name": "scratch", "emptyDir": {"sizeLimit": "128Mi"}}]
    assert {e["name"]: e["value"] for e in main["env"]}["TMPDIR"] == "/scratch"
    plain = service()["spec"]["template"]["spec"]
    assert "volumes" not in plain and "TMPDIR" not in env()


def test_large_numbers_from_a_values_file_render_as_integers() -> None:
    """A values file's numbers are floats in the templates; 2e+06 would be refused by Knative's
    getIntGE0 (annotation_validation.go) and by the function's int()."""
    docs = render("-f", str(CHART / "ci" / "large-numbers-values.yaml"))
    (rendered,), (trigger,) = by_kind(docs, "Service"), by_kind(docs, "Trigger")
    annotations = rendered["spec"]["template"]["metadata"]["annotations"]
    assert annotations["autoscaling.knative.dev/max-scale"] == "2000000"
    assert annotations["autoscaling.knative.dev/target"] == "1000000"
    values = {e["name"]: e["value"] for e in rendered["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (values["MAX_BODY_BYTES"], values["QUEUE_MAX_IMAGES"]) == ("1000000000", "1000000")
    assert trigger["spec"]["delivery"]["retry"] == 1_000_000


def test_eventing_trigger_subscribes_the_service() -> None:
    docs = render("-f", str(CHART / "ci" / "eventing-values.yaml"))
    (rendered,), (trigger,) = by_kind(docs, "Service"), by_kind(docs, "Trigger")
    assert rendered["metadata"]["labels"]["networking.knative.dev/visibility"] == "cluster-local"
    assert trigger["spec"]["broker"] == "images"
    assert trigger["spec"]["filter"]["attributes"]["type"] == REQUEST_TYPE
    assert trigger["spec"]["subscriber"]["ref"] == {
        "apiVersion": "serving.knative.dev/v1",
        "kind": "Service",
        "name": rendered["metadata"]["name"],
    }
    delivery = trigger["spec"]["delivery"]
    assert delivery["deadLetterSink"]["ref"]["name"] == "dead-letters"
    assert (delivery["timeout"], delivery["backoffDelay"], delivery["retry"]) == ("PT2M", "PT1S", 5)
    (default_trigger,) = by_kind(render("--set", "trigger.enabled=true"), "Trigger")
    assert default_trigger["spec"]["filter"]["attributes"] == {"type": REQUEST_TYPE}
    assert "timeout" not in default_trigger["spec"]["delivery"]


def test_newer_filters_replace_the_attributes_filter() -> None:
    (trigger,) = by_kind(render("-f", str(CHART / "ci" / "eventing-filters-values.yaml")), "Trigger")
    assert "filter" not in trigger["spec"]
    assert trigger["spec"]["filters"] == [
        {"exact": {"type": REQUEST_TYPE}},
        {"prefix": {"source": "/cameras/"}},
        {"not": {"exact": {"subject": "test"}}},
    ]


def helm_test_pod(*args: str) -> dict:
    result = helm("template", "cifar", str(CHART), "--show-only", "templates/tests/test-predict.yaml", *args)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_helm_test_pod_reaches_the_service_in_any_cluster_domain() -> None:
    pod = helm_test_pod("--namespace", "ml")
    assert pod["metadata"]["annotations"]["helm.sh/hook"] == "test"
    script = pod["spec"]["containers"][0]["args"][0]
    assert "--retry" in script and 'url="http://cifar-cifar10-function.ml.svc/"' in script
    assert "cluster.local" not in script


def test_helm_test_pod_meets_restricted_pod_security_and_quotas_and_yields_its_uid_to_openshift(tmp_path) -> None:
    pod = helm_test_pod()
    (container,) = pod["spec"]["containers"]
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True and pod["spec"]["securityContext"]["runAsUser"]
    assert container["securityContext"] == {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
    assert set(container["resources"]) == {"requests", "limits"}  # a ResourceQuota refuses a pod without them
    values = values_file(tmp_path / "openshift", "test:\n  podSecurityContext:\n    runAsUser: null\n")
    result = helm("template", "cifar", str(CHART), "--show-only", "templates/tests/test-predict.yaml", "-f", values)
    openshift = yaml.safe_load(result.stdout)["spec"]["securityContext"]
    assert "runAsUser" not in openshift and openshift["runAsNonRoot"] is True  # restricted-v2 assigns the uid


def test_helm_test_image_is_one_the_shipped_weights_call_a_horse() -> None:
    """The pod expects the label horse for its embedded image: the real network, the shipped weights."""
    import mxnet as mx
    from gluoncv.model_zoo import get_model

    from function.cifar10 import CLASSES
    from function.imaging import decode
    from function.inference import probabilities

    pod = helm_test_pod()
    (embedded,) = [e["value"] for e in pod["spec"]["containers"][0]["env"] if e["name"] == "IMAGE_B64"]
    net = get_model("cifar_resnet20_v1", classes=10)
    net.load_parameters(str(SHIPPED), ctx=mx.cpu())
    batch = np.stack([decode(base64.b64decode(embedded), 1_000_000)])
    assert CLASSES[int(probabilities(net, batch).argmax(axis=1)[0])] == "horse"


@pytest.mark.parametrize(
    "answer, passes",
    [
        ('{"label": "horse", "probability": 0.889, "top": [{"label": "horse", "probability": 0.889}]}', True),
        ('{"top": [{"label": "horse", "probability": 0.5}, {"label": "dog"}], "label": "horse"}', True),
        ('{"label": "dog", "probability": 0.6, "top": [{"label": "dog"}, {"label": "horse"}]}', False),
        ('{"top": [{"label": "horse", "probability": 0.4}], "label": "deer"}', False),
        ('{"error": {"code": "model_unavailable"}}', False),
    ],
)
def test_helm_test_pod_checks_the_label_it_gets_back(tmp_path: Path, answer: str, passes: bool) -> None:
    """The pod's own script under sh, with `curl` replaced by one that writes this answer (no cluster here)."""
    script = helm_test_pod()["spec"]["containers"][0]
    image_b64 = next(e["value"] for e in script["env"] if e["name"] == "IMAGE_B64")
    fake = tmp_path / "bin" / "curl"
    fake.parent.mkdir()
    (tmp_path / "reply.json").write_text(answer)
    fake.write_text(f'#!/bin/sh\nwhile [ "$1" != -o ]; do shift; done\ncp {tmp_path / "reply.json"} "$2"\n')
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    body = script["args"][0].replace("/tmp/", f"{tmp_path}/")
    result = subprocess.run(
        ["/bin/sh", "-ec", body],
        env={**os.environ, "PATH": f"{fake.parent}:{os.environ['PATH']}", "IMAGE_B64": image_b64},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert (result.returncode == 0) == passes, result.stdout + result.stderr


def test_helm_test_pod_passes_against_the_real_server_with_the_real_curl(server, tmp_path: Path) -> None:
    """The pod's script as rendered, with only its in-cluster URL pointed at the function on 127.0.0.1."""
    script = helm_test_pod("--set", "test.coldStartSeconds=60")["spec"]["containers"][0]
    image_b64 = next(e["value"] for e in script["env"] if e["name"] == "IMAGE_B64")
    body = script["args"][0].replace("/tmp/", f"{tmp_path}/")
    body = re.sub(r'^url="[^"]*"$', f'url="{server.url}/"', body, count=1, flags=re.MULTILINE)
    assert server.url in body
    env = {**os.environ, "IMAGE_B64": image_b64}
    result = subprocess.run(["/bin/sh", "-ec", body], env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "label: horse" in result.stdout, result.stdout + result.stderr


def notes(*args: str) -> str:
    result = helm("install", "cifar", str(CHART), "--dry-run=client", *args)
    assert result.returncode == 0, result.stderr
    return result.stdout[result.stdout.index("NOTES:") :]


def test_notes_name_the_feature_flags_the_values_need() -> None:
    text = notes("-f", str(CHART / "ci" / "gpu-scheduling-values.yaml"))
    for flag in (
        "kubernetes.podspec-nodeselector",
        "kubernetes.podspec-tolerations",
        "kubernetes.podspec-affinity",
        "kubernetes.podspec-runtimeclassname",
        "kubernetes.podspec-priorityclassname",
    ):
        assert flag in text
    assert "nvidia.com/gpu.compute.major" in text
    assert "kubernetes.podspec-volumes-emptydir" not in notes("--set", "tmpVolume.enabled=true")  # on since 1.8


def test_notes_show_the_sample_path_and_the_reply_headers() -> None:
    text = notes()
    assert "kubectl get ksvc" in text and "ce-type: dev.cifar10.classify.request" in text
    assert "@tests/data/horse.jpg" in text and "@horse.jpg" not in text
    assert 'curl -i -H "ce-specversion: 1.0"' in text


def test_notes_say_how_to_see_the_dead_letters() -> None:
    text = notes("-f", str(CHART / "ci" / "eventing-values.yaml"))
    assert "-l serving.knative.dev/service=dead-letters" in text
    assert "knativeerrorcode" in text and "deadLetterSinkUri" in text
    assert "PT2M" in text and "delivery-timeout" in text


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (["function.maxImagesPerRequest=257"], "function.maxImagesPerRequest (257) is above function.queueMaxImages"),
        (["timeoutSeconds=54"], "must leave 30 s for queue-proxy's drain"),
        (["function.workerTimeoutSeconds=120"], "function.workerTimeoutSeconds (120) must be below timeoutSeconds"),
        (["gpu.count=2", "gpu.mps=true"], "gpu.count 2 with gpu.mps"),
    ],
)
def test_values_the_function_or_the_cluster_would_refuse_fail_at_render_time(values: list[str], message: str) -> None:
    result = helm("template", "cifar", str(CHART), *(arg for value in values for arg in ("--set", value)))
    assert result.returncode != 0 and message in result.stderr, result.stderr


def test_values_at_those_boundaries_render() -> None:
    for values in (
        ["function.maxImagesPerRequest=256"],
        ["timeoutSeconds=55", "responseStartTimeoutSeconds=55", "function.workerTimeoutSeconds=54"],
        ["gpu.count=2"],
        ["gpu.mps=true"],
    ):
        result = helm("template", "cifar", str(CHART), *(arg for value in values for arg in ("--set", value)))
        assert result.returncode == 0, (values, result.stderr)


def test_a_null_delivery_leaves_the_brokers(tmp_path: Path) -> None:
    """Eventing takes a Trigger's delivery instead of the Broker's as a whole, so the default must be removable."""
    values = values_file(tmp_path / "v", "trigger:\n  enabled: true\n  delivery: null\n")
    (trigger,) = by_kind(render("-f", values), "Trigger")
    assert "delivery" not in trigger["spec"]
    (default,) = by_kind(render("--set", "trigger.enabled=true"), "Trigger")
    assert default["spec"]["delivery"]["retry"] == 3
    result = helm("install", "cifar", str(CHART), "--dry-run=client", "-f", values)
    assert result.returncode == 0 and "the broker's retries, back-off and dead-letter sink apply" in result.stdout
