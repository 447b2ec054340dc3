# syntax=docker/dockerfile:1.7
# kefu in one image: the API (`kefu serve`, the default command) and the Celery worker
# (`celery -A kefu.worker worker -B`). Used by deploy/compose.yaml; see README "Deploy".
#
#   docker build -t kefu .                              with the bundled local model (llama.cpp)
#   docker build --build-arg LOCAL_MODEL=0 -t kefu .    a model server only (KEFU_LLM=openai)
#
# Stage "build" compiles llama-cpp-python ONCE with the portable flags of scripts/install-local-model.sh
# (x86-64: AVX2/FMA/F16C, no AVX-512; the machine that builds is not the one that runs), in a layer of
# its own so a source change does not rebuild it; CMAKE_ARGS replaces the flags. Stage "runtime" copies
# the virtualenv only: no compiler, an unprivileged user, a health check on /healthz.
ARG PYTHON_VERSION=3.11

FROM python:${PYTHON_VERSION}-slim-bookworm AS build
ARG LOCAL_MODEL=1
ARG CMAKE_ARGS=""
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 KEFU_WHEEL_CACHE=/wheels
RUN apt-get update \
 && apt-get install -y --no-install-recommends build-essential cmake ninja-build git \
 && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/kefu && /opt/kefu/bin/pip install --upgrade pip
WORKDIR /src
COPY scripts/install-local-model.sh scripts/
RUN --mount=type=cache,target=/wheels \
    if [ "$LOCAL_MODEL" = 1 ]; then CMAKE_ARGS="$CMAKE_ARGS" bash scripts/install-local-model.sh /opt/kefu; fi
COPY pyproject.toml README.md ./
COPY src ./src
RUN extras="redis,postgres,celery"; \
    if [ "$LOCAL_MODEL" = 1 ]; then extras="$extras,local"; fi; \
    /opt/kefu/bin/pip install ".[$extras]" \
 && /opt/kefu/bin/kefu version

FROM python:${PYTHON_VERSION}-slim-bookworm AS runtime
# libgomp1: OpenMP for llama.cpp and FAISS
RUN apt-get update \
 && apt-get install -y --no-install-recommends libgomp1 \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /var/lib/kefu --create-home kefu
COPY --from=build /opt/kefu /opt/kefu
ENV PATH=/opt/kefu/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    XDG_CACHE_HOME=/var/lib/kefu/cache \
    KEFU_DATA_DIR=/var/lib/kefu/data \
    KEFU_HOST=0.0.0.0 \
    KEFU_PORT=8000
USER kefu
WORKDIR /var/lib/kefu
VOLUME ["/var/lib/kefu"]
EXPOSE 8000
# start-period: the first start joins and verifies the local model's weights and embeds the KB
HEALTHCHECK --interval=15s --timeout=5s --start-period=180s --retries=3 \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["kefu", "serve"]
