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

/**
 * A Jackson module that reads and writes {@link RunSpec} through {@link RunSpecCodec}, wherever a spec sits inside a
 * larger object: Temporal's payload converter uses it, so a spec in a workflow input parses with the codec's strict
 * rules and its error messages.
 */
public final class RunSpecJackson {
    private RunSpecJackson() {}

    public static SimpleModule module() {
        SimpleModule module = new SimpleModule("slope-run-spec");
        module.addSerializer(RunSpec.class, new JsonSerializer<>() {
            @Override
            public void serialize(RunSpec spec, JsonGenerator gen, SerializerProvider serializers) throws IOException {
                gen.writeRawValue(RunSpecCodec.toJson(spec));
            }
        });
        module.addDeserializer(RunSpec.class, new JsonDeserializer<>() {
            @Override
            public RunSpec deserialize(JsonParser parser, DeserializationContext context) throws IOException {
                JsonNode tree = parser.readValueAsTree();
                return RunSpecCodec.parse(tree.toString());
            }
        });
        return module;
    }
}
