# Worker images. gpu-worker: the jlink runtime (docs/architecture.md §4: the device has no Java) on a CUDA runtime base,
# with the CUDA backend (engine-cuda: its kernels and cuDNN shim built here) and the NVIDIA libraries it binds at run
# time, versions pinned; pipeline-worker: the same jars on a plain JRE. Built outside this repository's CI; see
# compose.yaml.
FROM maven:3.9-eclipse-temurin-25 AS build
# nvcc and the cuDNN headers come from PyPI through ./slope tools (into .tools/); a jar without kernels fails the build.
RUN apt-get update && apt-get install -y --no-install-recommends python3-pip && rm -rf /var/lib/apt/lists/*
ENV PIP_BREAK_SYSTEM_PACKAGES=1 SLOPE_REQUIRE_NVCC=1
WORKDIR /src
COPY . .
RUN ./slope tools \
    && mvn -B -ntp -pl gpu-worker -am -DskipTests package dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory=target/lib \
    && cp gpu-worker/target/slope-gpu-worker-0.1.0-SNAPSHOT.jar gpu-worker/target/lib/ \
    && jlink --add-modules java.base,java.logging,java.management,java.naming,java.net.http,java.sql,jdk.unsupported \
        --strip-debug --no-header-files --no-man-pages --compress=zip-9 --output /opt/slope-java

# cuSPARSELt (the 2:4 GEMMs) and cuDNN (fused attention) from NVIDIA's wheels, pinned to the versions the device
# checks ran with (cuSPARSELt 0.8.0; cuDNN 9.13, the headers the shim is built against).
FROM python:3.12-slim AS nvidia-libs
RUN pip install --no-cache-dir --no-deps --target /opt/nvidia nvidia-cusparselt-cu13==0.8.0 \
        nvidia-cudnn-cu13==9.13.0.50

FROM eclipse-temurin:25-jre AS pipeline-worker
COPY --from=build /src/gpu-worker/target/lib/ /app/lib/
USER 65532
CMD ["java", "-cp", "/app/lib/*", "io.slope.activities.worker.PipelineWorker"]

FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04 AS gpu-worker
COPY --from=build /opt/slope-java /opt/slope-java
COPY --from=build /src/gpu-worker/target/lib/ /app/lib/
COPY --from=nvidia-libs /opt/nvidia/nvidia/cusparselt/lib/ /opt/nvidia/cusparselt/lib/
COPY --from=nvidia-libs /opt/nvidia/nvidia/cudnn/lib/ /opt/nvidia/cudnn/lib/
# SLOPE_CUDA_LIBS is where the backend looks for cuSPARSELt and cuDNN; cuDNN opens its engine libraries by name.
ENV PATH=/opt/slope-java/bin:$PATH \
    SLOPE_CUDA_LIBS=/opt/nvidia/cusparselt/lib:/opt/nvidia/cudnn/lib \
    LD_LIBRARY_PATH=/opt/nvidia/cudnn/lib
USER 65532
# The worker prints at start which backends it found and, for one it cannot run, why.
CMD ["java", "--enable-native-access=ALL-UNNAMED", "-cp", "/app/lib/*", "io.slope.gpuworker.GpuWorker"]
