package io.slope.workflows.run;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.slope.workflows.converter.SlopeDataConverter;
import io.temporal.api.common.v1.Payload;
import io.temporal.api.history.v1.HistoryEvent;
import io.temporal.common.WorkflowExecutionHistory;
import io.temporal.common.converter.DataConverter;
import java.lang.reflect.Method;
import java.lang.reflect.ParameterizedType;
import java.lang.reflect.Type;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;

/**
 * The specs in the committed histories' payloads, written by earlier versions when a resolved spec was a
 * {@link io.slope.spec.RunSpec}, read into today's types ({@link io.slope.spec.ResolvedSpec} in activity arguments)
 * and written again are the same bytes: what today's workflow sends is what workers and the histories of runs in
 * flight know. Replay alone would not see this, since it does not compare activity arguments. (Other parts of a
 * payload may have grown since, as RunOptions did.)
 */
class HistoryPayloadsTest {
    private static final DataConverter CONVERTER = SlopeDataConverter.create();

    @Test
    void everySpecInAWorkflowOrActivityInputIsWrittenAgainAsItWas() throws Exception {
        List<String> specs = new ArrayList<>();
        for (Path file : histories()) {
            for (HistoryEvent event : WorkflowExecutionHistory.fromJson(Files.readString(file)).getEvents()) {
                if (event.hasWorkflowExecutionStartedEventAttributes()) {
                    List<Payload> input = event.getWorkflowExecutionStartedEventAttributes().getInput()
                            .getPayloadsList();
                    assertEquals(1, input.size());
                    assertRewrittenAsItWas(file, "workflow input", input.getFirst(), RunInput.class, specs);
                } else if (event.hasActivityTaskScheduledEventAttributes()) {
                    var scheduled = event.getActivityTaskScheduledEventAttributes();
                    Method method = activity(scheduled.getActivityType().getName());
                    List<Payload> arguments = scheduled.getInput().getPayloadsList();
                    Type[] types = method.getGenericParameterTypes();
                    assertEquals(types.length, arguments.size(), method.getName());
                    for (int i = 0; i < types.length; i++) {
                        assertRewrittenAsItWas(file, method.getName() + " argument " + i, arguments.get(i),
                                types[i], specs);
                    }
                } else if (event.hasWorkflowExecutionContinuedAsNewEventAttributes()) {
                    List<Payload> input = event.getWorkflowExecutionContinuedAsNewEventAttributes().getInput()
                            .getPayloadsList();
                    assertRewrittenAsItWas(file, "continue-as-new input", input.getFirst(), RunInput.class, specs);
                }
            }
        }
        assertTrue(specs.size() >= 3, "the histories send a spec to prepareData, trainChunk and merge: " + specs);
    }

    private static void assertRewrittenAsItWas(Path file, String what, Payload payload, Type type,
            List<String> specs) {
        Class<?> raw = type instanceof ParameterizedType p ? (Class<?>) p.getRawType() : (Class<?>) type;
        Object value = CONVERTER.fromPayload(payload, raw, type);
        String again = CONVERTER.toPayload(value).orElseThrow().getData().toStringUtf8();
        String spec = specText(payload.getData().toStringUtf8());
        if (spec != null) {
            assertEquals(spec, specText(again), file.getFileName() + ": " + what);
            specs.add(what);
        }
    }

    /** The spec's JSON text in a payload: the whole payload, or the value of its "spec" member; null for none. */
    private static String specText(String json) {
        if (json.startsWith("{\n  \"name\" : ")) {
            return json;
        }
        int member = json.indexOf("\"spec\":{");
        if (member < 0) {
            return null;
        }
        int start = json.indexOf('{', member);
        int depth = 0;
        for (int i = start; i < json.length(); i++) {
            depth += json.charAt(i) == '{' ? 1 : json.charAt(i) == '}' ? -1 : 0;
            if (depth == 0) {
                return json.substring(start, i + 1);
            }
        }
        throw new AssertionError("unbalanced spec in " + json);
    }

    private static Method activity(String type) {
        for (Class<?> activities : List.of(PipelineActivities.class, ModelActivities.class)) {
            for (Method m : activities.getMethods()) {
                if (Character.toUpperCase(m.getName().charAt(0)) == type.charAt(0)
                        && m.getName().substring(1).equals(type.substring(1))) {
                    return m;
                }
            }
        }
        throw new AssertionError("no activity method for type " + type);
    }

    private static List<Path> histories() throws Exception {
        try (Stream<Path> files = Files.list(Path.of("src/test/resources/histories"))) {
            return files.filter(f -> f.toString().endsWith(".json")).sorted().toList();
        }
    }
}
