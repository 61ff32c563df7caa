# Worker images. gpu-worker: the jlink runtime (docs/architecture.md §4: the device has no Java) on a CUDA runtime base;
# pipeline-worker: the same jars on a plain JRE. Built and tested outside this repository's CI; see compose.yaml.
FROM maven:3.9-eclipse-temurin-25 AS build
WORKDIR /src
COPY . .
RUN mvn -B -ntp -pl gpu-worker -am -DskipTests package dependency:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory=target/lib \
    && cp gpu-worker/target/slope-gpu-worker-0.1.0-SNAPSHOT.jar gpu-worker/target/lib/ \
    && jlink --add-modules java.base,java.logging,java.management,java.naming,java.net.http,java.sql,jdk.unsupported \
        --strip-debug --no-header-files --no-man-pages --compress=zip-9 --output /opt/slope-java

FROM eclipse-temurin:25-jre AS pipeline-worker
COPY --from=build /src/gpu-worker/target/lib/ /app/lib/
USER 65532
CMD ["java", "-cp", "/app/lib/*", "io.slope.activities.worker.PipelineWorker"]

FROM nvidia/cuda:13.0.1-runtime-ubuntu24.04 AS gpu-worker
COPY --from=build /opt/slope-java /opt/slope-java
COPY --from=build /src/gpu-worker/target/lib/ /app/lib/
ENV PATH=/opt/slope-java/bin:$PATH
USER 65532
CMD ["java", "--enable-native-access=ALL-UNNAMED", "-cp", "/app/lib/*", "io.slope.gpuworker.GpuWorker"]
