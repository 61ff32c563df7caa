package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/** docs/spec.md promises to match the code: its tables, preset list and examples are checked against it here. */
class SpecDocumentationTest {
    // Surefire runs in the module folder; docs/ is beside it at the repository root.
    private static final Path DOC = Path.of("..", "docs", "spec.md");
    private static final Pattern FIELD_ROW = Pattern.compile("^\\| `([A-Za-z0-9.]+)` \\| [^|]+ \\| ([^|]+) \\|");
    private static final Pattern PRESET_ROW =
            Pattern.compile("^\\| `([a-z0-9-]+)` \\| (\\d+) \\| (\\d+) \\| (\\d+) \\| (\\d+) \\| (\\d+) \\|$");
    private static final Pattern LITERAL = Pattern.compile("`([^`]+)`");
    private static final ObjectMapper JSON = new ObjectMapper();

    private static List<String> lines;

    @BeforeAll
    static void readDoc() throws IOException {
        lines = Files.readAllLines(DOC);
    }

    /** Field path → default cell, for every row of the tables headed "| field | type | default |". */
    private static Map<String, String> documentedDefaults() {
        Map<String, String> rows = new LinkedHashMap<>();
        boolean inFieldTable = false;
        for (String line : lines) {
            inFieldTable = line.startsWith("| field | type | default |") || (inFieldTable && line.startsWith("|"));
            Matcher m = FIELD_ROW.matcher(line);
            if (inFieldTable && m.find()) {
                rows.put(m.group(1), m.group(2).trim());
            }
        }
        return rows;
    }

    @Test
    void everyFieldIsDocumentedAndEveryDocumentedFieldExists() {
        JsonNode resolved = resolvedMinimal();
        Set<String> leaves = new TreeSet<>();
        collectLeaves(resolved, "", leaves);
        Map<String, String> documented = documentedDefaults();

        assertEquals(Set.of(), difference(leaves, documented.keySet()), "fields missing from docs/spec.md");
        // data.validation has no default, so the minimal spec's resolution leaves it out; a spec that gives it has it.
        JsonNode withHeldOutFiles = resolved("{\"data\": {\"corpus\": [\"c.txt\"], \"validation\": [\"v.txt\"]}}");
        for (String field : documented.keySet()) {
            assertFalse(resolved.at(pointer(field)).isMissingNode()
                    && withHeldOutFiles.at(pointer(field)).isMissingNode(),
                    "docs/spec.md documents no such field: " + field);
        }
    }

    @Test
    void literalDefaultsInTheTablesAreTheResolvedDefaults() throws IOException {
        JsonNode resolved = resolvedMinimal();
        Set<String> notLiteral = new TreeSet<>();
        for (Map.Entry<String, String> row : documentedDefaults().entrySet()) {
            Matcher literal = LITERAL.matcher(row.getValue());
            JsonNode actual = resolved.at(pointer(row.getKey()));
            if (literal.matches()) {
                JsonNode documented = JSON.readTree(literal.group(1));
                assertTrue(sameValue(documented, actual), row.getKey() + ": docs say " + documented + ", code resolves "
                        + actual);
            } else if (!actual.isObject()) {
                notLiteral.add(row.getKey());
            }
        }
        // Only these defaults are derived (or, for the corpus, required); every other one must be checkable above.
        assertEquals(new TreeSet<>(List.of("model.layers", "model.heads", "model.dModel", "model.seqLen",
                "adapters.rank", "optimizer.warmupSteps", "data.corpus", "data.validation")), notLiteral);
    }

    @Test
    void thePresetTableMatchesPresetAndTheDefaultAdapterRank() {
        List<String> documented = new ArrayList<>();
        for (String line : lines) {
            Matcher m = PRESET_ROW.matcher(line);
            if (m.matches()) {
                String name = m.group(1);
                RunSpec.Model shape = Preset.fromWire(name).model().toRunSpec();
                assertEquals(new RunSpec.Model(name, Integer.valueOf(m.group(2)), Integer.valueOf(m.group(3)),
                        Integer.valueOf(m.group(4)), Integer.valueOf(m.group(5))), shape, name);
                assertEquals(RunSpecs.defaultAdapterRank(shape.dModel()), Integer.parseInt(m.group(6)), name);
                documented.add(name);
            }
        }
        assertEquals(Preset.wireNames(), documented);
    }

    @Test
    void theMinimalExampleResolvesToTheDocumentedResolution() throws IOException {
        ResolvedSpec minimal = RunSpecCodec.parseResolved(example("minimal"));

        assertEquals(JSON.readTree(example("minimal-resolved")), JSON.readTree(RunSpecCodec.toJson(minimal)));
    }

    @Test
    void theCompleteExampleIsValidAndSpellsOutEveryField() {
        RunSpec parsed = RunSpecCodec.parse(example("complete"));

        assertEquals(RunSpecs.resolve(parsed).toRunSpec(), parsed);
    }

    private static JsonNode resolvedMinimal() {
        return resolved(Specs.withCorpus(""));
    }

    private static JsonNode resolved(String spec) {
        try {
            return JSON.readTree(RunSpecCodec.toJson(RunSpecCodec.parseResolved(spec)));
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
    }

    /** The ```json block that follows the marker {@code <!-- example: name -->}. */
    private static String example(String name) {
        int marker = lines.indexOf("<!-- example: " + name + " -->");
        assertTrue(marker >= 0 && lines.get(marker + 1).equals("```json"), "no example '" + name + "' in the doc");
        StringBuilder json = new StringBuilder();
        for (int i = marker + 2; !lines.get(i).equals("```"); i++) {
            json.append(lines.get(i)).append('\n');
        }
        return json.toString();
    }

    private static void collectLeaves(JsonNode node, String path, Set<String> leaves) {
        if (!node.isObject()) {
            leaves.add(path);
            return;
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> child = it.next();
            collectLeaves(child.getValue(), path.isEmpty() ? child.getKey() : path + "." + child.getKey(), leaves);
        }
    }

    private static String pointer(String dottedPath) {
        return "/" + dottedPath.replace('.', '/');
    }

    /** 1.0 and 1 are the same default; JSON trees would call them different. */
    private static boolean sameValue(JsonNode a, JsonNode b) {
        return a.isNumber() && b.isNumber() ? a.doubleValue() == b.doubleValue() : a.equals(b);
    }

    private static Set<String> difference(Set<String> a, Set<String> b) {
        Set<String> d = new TreeSet<>(a);
        d.removeAll(b);
        return d;
    }
}
