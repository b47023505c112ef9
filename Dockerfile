# The function's image. VARIANT=gpu (default) installs mxnet-cu112 with CUDA 11.2 and cuDNN 8 from
# PyPI (nvidia-*-cu11 wheels) on a slim Python base: no CUDA base image is needed, because the
# NVIDIA container runtime injects the driver's libcuda.so.1 on GPU nodes. VARIANT=cpu installs the
# CPU build of mxnet instead. Offline builds (`make image-test`) mount a wheelhouse, a pip.conf and a
# local apt source over this file's own steps; nothing here changes for them.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm
ARG VARIANT=gpu

FROM ${PYTHON_IMAGE} AS build
ARG VARIANT
WORKDIR /src
# The dependencies first, from pyproject.toml alone (the project's and the VARIANT extra's): a change
# to the code or the README then reuses this layer instead of installing them again (about 2.5 GB
# for the GPU variant).
# Not imported when the function serves (measured with `python -X importtime` and by blocking each
# import), so dropped: opencv (mxnet.image tries cv2 and goes on without it), pandas and matplotlib
# with the packages only they need (gluoncv imports them inside its data set and plotting
# functions), and pip. scipy stays: gluoncv.data imports scipy.io. `make image-test` checks that
# the image still loads the model and classifies; `make gpu-smoke` drops the same packages.
COPY pyproject.toml ./
RUN python -m venv /opt/venv \
    && python -c 'import sys, tomllib; p = tomllib.load(open("pyproject.toml", "rb"))["project"]; \
print(*p["dependencies"], *p["optional-dependencies"][sys.argv[1]], sep="\n")' "${VARIANT}" >requirements.txt \
    && /opt/venv/bin/pip install --no-cache-dir -r requirements.txt \
    && /opt/venv/bin/pip uninstall --yes opencv-python pandas matplotlib \
        contourpy cycler fonttools kiwisolver pyparsing python-dateutil pytz tzdata
# Then the function itself (the training package stays out of the image: serving never imports it).
COPY README.md ./
COPY function ./function
RUN /opt/venv/bin/pip install --no-cache-dir --no-deps . \
    && /opt/venv/bin/python -m pip uninstall --yes pip

# The GPU variant's stand-in driver (tools/libcuda_stub.c: every entry point answers "no device"),
# kept off the library path: function/device.py loads it only when no real libcuda.so.1 loads.
FROM ${PYTHON_IMAGE} AS libcuda-fallback
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
COPY tools/libcuda_stub.c /src/
RUN mkdir /opt/libcuda-fallback \
    && gcc -shared -fPIC -O2 -Wl,-soname,libcuda.so.1 -o /opt/libcuda-fallback/libcuda.so.1 /src/libcuda_stub.c

FROM ${PYTHON_IMAGE} AS runtime
# mxnet links against the system's OpenMP and quadmath runtimes; bookworm's current ones, unpinned,
# so that a gcc-12 point release cannot break the build.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends libgomp1 libquadmath0 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --uid 10001 --no-create-home --shell /usr/sbin/nologin function
COPY --from=build /opt/venv /opt/venv
ENV SITE=/opt/venv/lib/python3.11/site-packages
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PORT=8080
USER 10001
EXPOSE 8080
# The server (uvicorn and its inference workers) reads PORT and every other setting from the environment.
ENTRYPOINT ["python", "-m", "function"]

FROM runtime AS runtime-cpu

FROM runtime AS runtime-gpu
COPY --from=libcuda-fallback /opt/libcuda-fallback /opt/libcuda-fallback
ENV LIBCUDA_FALLBACK=/opt/libcuda-fallback/libcuda.so.1 \
    LD_LIBRARY_PATH=$SITE/nvidia/cuda_runtime/lib:$SITE/nvidia/cublas/lib:$SITE/nvidia/cudnn/lib:$SITE/nvidia/cufft/lib:$SITE/nvidia/curand/lib:$SITE/nvidia/cusolver/lib:$SITE/nvidia/cusparse/lib:$SITE/nvidia/cuda_nvrtc/lib:$SITE/nvidia/nvtx/lib:$SITE/nvidia/nccl/lib

# The stage of this file that VARIANT names (hadolint takes it for an untagged image).
# hadolint ignore=DL3006
FROM runtime-${VARIANT}
