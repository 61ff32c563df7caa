package io.slope.workflows.converter;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.slope.spec.RunSpecJackson;
import io.temporal.common.converter.DataConverter;
import io.temporal.common.converter.DefaultDataConverter;
import io.temporal.common.converter.JacksonJsonPayloadConverter;

/**
 * The data converter of every slope client and worker: Temporal's default, with JSON written by a Jackson mapper that
 * reads and writes {@link io.slope.spec.RunSpec} and {@link io.slope.spec.ResolvedSpec} through the spec codec (strict
 * types, messages naming the field; a resolved spec as the JSON of its RunSpec).
 */
public final class SlopeDataConverter {
    private SlopeDataConverter() {}

    public static ObjectMapper objectMapper() {
        return JacksonJsonPayloadConverter.newDefaultObjectMapper().registerModule(RunSpecJackson.module());
    }

    public static DataConverter create() {
        return DefaultDataConverter.newDefaultInstance()
                .withPayloadConverterOverrides(new JacksonJsonPayloadConverter(objectMapper()));
    }
}
