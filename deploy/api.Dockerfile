# The API image: the api module's jar and its runtime dependencies on a Java 25 JRE.
# Built and tested outside this repository's CI (no Docker engine there); see compose.yaml.
FROM maven:3.9-eclipse-temurin-25 AS build
WORKDIR /src
COPY . .
RUN mvn -B -ntp -pl api -am -DskipTests package

FROM eclipse-temurin:25-jre
RUN apt-get update && apt-get install -y --no-install-recommends curl && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/api/target/lib/ /app/lib/
COPY --from=build /src/api/target/slope-api-0.1.0-SNAPSHOT.jar /app/lib/
EXPOSE 8080
USER 65532
CMD ["java", "-cp", "/app/lib/*", "io.slope.api.Application"]
