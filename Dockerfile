# The product's Airflow image: the official Airflow 3.3 image + the tested runtime pins + the
# package (plugins/: the drop-in layout, with its shipped data and the UI plugin), DAGs, include/ and
# checksum-verified model weights ([matting] model_dir).
#
#   CPU (scheduler, api-server, triggerer, default worker):  docker compose build
#   GPU worker:  built by the compose service airflow-worker-gpu with MATTING_VARIANT=gpu
#
# Build args:
#   AIRFLOW_VERSION   must match apache-airflow in requirements-runtime.txt (a test checks)
#   MATTING_VARIANT   cpu | gpu  (gpu swaps onnxruntime for onnxruntime-gpu with NVIDIA's CUDA/cuDNN wheels)
#   MATTING_MODELS    models fetched into the image at build time, checksums verified (see plugins/matting/data/models.json)
ARG AIRFLOW_VERSION=3.3.2
FROM apache/airflow:${AIRFLOW_VERSION}-python3.11

ARG AIRFLOW_VERSION=3.3.2
ARG MATTING_VARIANT=cpu
ARG MATTING_MODELS="u2netp modnet isnet-general-use"
ARG ONNXRUNTIME_GPU="onnxruntime-gpu[cuda,cudnn]==1.31.1"

ENV PYTHONPATH=/opt/airflow/plugins \
    AIRFLOW__MATTING__MODEL_DIR=/opt/airflow/models \
    AIRFLOW__MATTING__DATA_DIR=/opt/airflow/data \
    MATTING_VARIANT=${MATTING_VARIANT}

USER airflow
# mount points owned by the airflow user: a fresh named volume takes this ownership
# (group-writable: the compose file runs as any AIRFLOW_UID with group 0)
RUN mkdir -p /opt/airflow/config /opt/airflow/data /opt/airflow/trt-cache \
 && chmod -R g+rwX /opt/airflow/config /opt/airflow/data /opt/airflow/trt-cache
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
# weights come from rembg's release URLs (the manifest's first source) and are checked against the
# manifest's checksum; a mismatch fails the build
RUN python -m matting models fetch ${MATTING_MODELS} idphoto && python -m matting models list
