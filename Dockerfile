# wordvec: one CPU-only image for the API, the job worker and `wordvec init`.
#
#   docker build -t wordvec .
#   docker compose up            (see docs/docker.md)
#
# Two stages: the first has a compiler for the native training kernel, the
# second copies the finished virtual environment and has none. Nothing here
# sets a WORDVEC_* setting or holds a secret; docker-compose.yml or
# `docker run -e` passes them.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends g++ \
    && rm -rf /var/lib/apt/lists/*
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/venv/bin:$PATH
RUN python -m venv /opt/venv \
    && pip install --upgrade pip setuptools wheel ninja
# Pinned, from the CPU index: the default index would resolve torch to the
# CUDA build, several gigabytes of libraries no CPU machine uses.
RUN pip install torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY training training
COPY index index
COPY app app
# The kernel is compiled against the torch above, so no build isolation.
# "native" would tune it for the build machine's CPU; a portable level runs
# on any x86-64 host from about 2009 on (other architectures: pass
# --build-arg WORDVEC_NATIVE_ARCH=native, or the kernel falls back to PyTorch).
ARG WORDVEC_NATIVE_ARCH=x86-64-v2
RUN WORDVEC_NATIVE_ARCH=${WORDVEC_NATIVE_ARCH} \
    pip install --no-build-isolation ".[redis,postgres]"
# setup.py lets a failed compile pass quietly (fine on a laptop without a
# compiler), which here would ship an image that trains ~30x slower. So the
# build stops unless the installed package has its kernel; pass
# --build-arg ALLOW_TORCH_FALLBACK=1 to accept the PyTorch path on purpose.
# The check runs from / so that it imports the installed package, not /src.
ARG ALLOW_TORCH_FALLBACK=0
RUN cd / && python -c "import os, sys, training.kernels as k; \
built = k.native_available(); \
print('native kernel:', 'built' if built else 'NOT built (PyTorch fallback)'); \
allowed = os.environ.get('ALLOW_TORCH_FALLBACK') == '1'; \
sys.exit(0 if built or allowed else 'the native kernel did not compile (see \
the pip output above); fix that, or build with --build-arg \
ALLOW_TORCH_FALLBACK=1 to ship the ~30x slower PyTorch path')"

FROM ${PYTHON_IMAGE} AS runtime
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN groupadd --system --gid 10001 wordvec \
    && useradd --system --uid 10001 --gid wordvec --home-dir /app --shell /usr/sbin/nologin wordvec \
    && mkdir /data \
    && chown wordvec:wordvec /data
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# The shipped corpus, for `wordvec init` to train the default model from.
COPY data/corpus /app/data/corpus
USER wordvec
# Models, uploads and the job database. A new named volume takes this
# directory's owner, so the non-root user can write to it.
VOLUME /data
EXPOSE 8000
# Ready means a model answers queries (503 while loading or with none active).
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('WORDVEC_PORT', '8000'), timeout=4)"]
CMD ["wordvec", "serve", "--data-dir", "/data", "--host", "0.0.0.0"]
