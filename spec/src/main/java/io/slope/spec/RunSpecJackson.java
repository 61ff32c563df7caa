package io.slope.spec;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.databind.DeserializationContext;
import com.fasterxml.jackson.databind.JsonDeserializer;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.JsonSerializer;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.module.SimpleModule;
import java.io.IOException;
import java.util.function.Function;

/**
 * A Jackson module that reads and writes {@link RunSpec} and {@link ResolvedSpec} through {@link RunSpecCodec},
 * wherever a spec sits inside a larger object: Temporal's payload converter uses it, so a spec in a workflow input
 * parses with the codec's strict rules and its error messages. A resolved spec is written as the JSON of its
 * {@link ResolvedSpec#toRunSpec()}, the same as the RunSpec it was sent as before it had its own type, and read back
 * through {@link RunSpecs#resolve}.
 */
public final class RunSpecJackson {
    private RunSpecJackson() {}

    public static SimpleModule module() {
        SimpleModule module = new SimpleModule("slope-run-spec");
        throughCodec(module, RunSpec.class, RunSpecCodec::toJson, RunSpecCodec::parse);
        throughCodec(module, ResolvedSpec.class, RunSpecCodec::toJson, RunSpecCodec::parseResolved);
        return module;
    }

    private static <T> void throughCodec(SimpleModule module, Class<T> type, Function<T, String> toJson,
            Function<String, T> parse) {
        module.addSerializer(type, new JsonSerializer<>() {
            @Override
            public void serialize(T spec, JsonGenerator gen, SerializerProvider serializers) throws IOException {
                gen.writeRawValue(toJson.apply(spec));
            }
        });
        module.addDeserializer(type, new JsonDeserializer<>() {
            @Override
            public T deserialize(JsonParser parser, DeserializationContext context) throws IOException {
                JsonNode tree = parser.readValueAsTree();
                return parse.apply(tree.toString());
            }
        });
    }
}
