# The function's image. VARIANT=gpu (default) installs mxnet-cu112 with CUDA 11.2 and cuDNN 8 from
# PyPI (nvidia-*-cu11 wheels) on a slim Python base: no CUDA base image is needed, because the
# NVIDIA container runtime injects the driver's libcuda.so.1 on GPU nodes. VARIANT=cpu installs the
# CPU build of mxnet instead.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT=gpu
WORKDIR /src
COPY pyproject.toml README.md ./
COPY function ./function
COPY training ./training
# gluoncv pulls in opencv-python, which the function never imports: dropped to save 60 MB.
RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --no-cache-dir ".[${VARIANT}]" \
    && /opt/venv/bin/pip uninstall --yes opencv-python \
    && find /opt/venv -name "__pycache__" -type d -prune -exec rm -rf {} +

FROM ${PYTHON_IMAGE}
# mxnet links against the system's OpenMP and quadmath runtimes.
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1=12.2.0-14+deb12u1 libquadmath0=12.2.0-14+deb12u1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin function
COPY --from=build /opt/venv /opt/venv
ENV SITE=/opt/venv/lib/python3.11/site-packages
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=8080 \
    WORKERS=1 \
    THREADS=16 \
    PROMETHEUS_MULTIPROC_DIR=/tmp/cifar10-metrics \
    FUNCTION_TARGET=handle \
    FUNCTION_SOURCE=$SITE/function/main.py \
    LD_LIBRARY_PATH=$SITE/nvidia/cuda_runtime/lib:$SITE/nvidia/cublas/lib:$SITE/nvidia/cudnn/lib:$SITE/nvidia/cufft/lib:$SITE/nvidia/curand/lib:$SITE/nvidia/cusolver/lib:$SITE/nvidia/cusparse/lib:$SITE/nvidia/cuda_nvrtc/lib:$SITE/nvidia/nvtx/lib:$SITE/nvidia/nccl/lib
USER 10001
EXPOSE 8080
# functions-framework reads PORT, FUNCTION_TARGET and FUNCTION_SOURCE from the environment.
ENTRYPOINT ["functions-framework"]
