package io.slope.spec;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.xml.parsers.DocumentBuilderFactory;
import org.junit.jupiter.api.Test;
import org.w3c.dom.Element;
import org.w3c.dom.Node;
import org.w3c.dom.NodeList;

/**
 * docs/architecture.md's module table is the rule: every module's {@code io.slope} dependencies, read from the poms,
 * are ones its row allows (test-scoped ones may also come from the "its tests also use" column).
 */
class ArchitectureTest {
    // Surefire runs in the module folder; the repository root is its parent.
    private static final Path ROOT = Path.of("..");
    private static final Pattern ROW = Pattern.compile("^\\| `([a-z-]+)` \\|[^|]*\\|([^|]*)\\|([^|]*)\\|$");
    private static final Pattern NAME = Pattern.compile("`([a-z-]+)`");
    private static final String ARTIFACT_PREFIX = "slope-";

    /** A module's allowed dependencies: for its main code, and in addition for its tests. */
    private record Allowed(Set<String> main, Set<String> tests) {}

    /** A dependency on another module as a pom declares it. */
    private record Dependency(String module, boolean testScope) {}

    @Test
    void everyModuleDependsOnlyOnWhatDocsArchitectureAllows() throws Exception {
        Map<String, Allowed> table = documentedModules();
        List<String> violations = new ArrayList<>();
        for (String module : reactorModules()) {
            Allowed allowed = table.get(module);
            for (Dependency d : slopeDependencies(module)) {
                boolean ok = allowed.main().contains(d.module())
                        || (d.testScope() && allowed.tests().contains(d.module()));
                if (!ok) {
                    violations.add(module + " -> " + d.module() + (d.testScope() ? " (test)" : ""));
                }
            }
        }
        assertEquals(List.of(), violations, "dependencies that docs/architecture.md §1 does not allow");
    }

    @Test
    void theTableListsExactlyTheReactorsModules() throws Exception {
        assertEquals(new TreeSet<>(reactorModules()), new TreeSet<>(documentedModules().keySet()));
    }

    private static Map<String, Allowed> documentedModules() throws Exception {
        Map<String, Allowed> modules = new LinkedHashMap<>();
        for (String line : Files.readAllLines(ROOT.resolve("docs/architecture.md"))) {
            Matcher m = ROW.matcher(line);
            if (m.find()) {
                modules.put(m.group(1), new Allowed(names(m.group(2)), names(m.group(3))));
            }
        }
        assertTrue(modules.size() > 1, "no module table found in docs/architecture.md");
        return modules;
    }

    private static Set<String> names(String cell) {
        Set<String> names = new TreeSet<>();
        Matcher m = NAME.matcher(cell);
        while (m.find()) {
            names.add(m.group(1));
        }
        return names;
    }

    private static List<String> reactorModules() throws Exception {
        List<String> modules = new ArrayList<>();
        for (Element e : children(pom(ROOT.resolve("pom.xml")), "modules", "module")) {
            modules.add(e.getTextContent().trim());
        }
        return modules;
    }

    private static List<Dependency> slopeDependencies(String module) throws Exception {
        List<Dependency> dependencies = new ArrayList<>();
        for (Element d : children(pom(ROOT.resolve(module).resolve("pom.xml")), "dependencies", "dependency")) {
            String group = text(d, "groupId");
            String artifact = text(d, "artifactId");
            boolean ours = group.equals("io.slope") || group.equals("${project.groupId}");
            if (ours && artifact.startsWith(ARTIFACT_PREFIX)) {
                dependencies.add(new Dependency(artifact.substring(ARTIFACT_PREFIX.length()),
                        text(d, "scope").equals("test")));
            }
        }
        return dependencies;
    }

    private static Element pom(Path file) throws Exception {
        return DocumentBuilderFactory.newInstance().newDocumentBuilder().parse(file.toFile()).getDocumentElement();
    }

    /** The {@code item} elements of the project's own {@code list} element (not those under dependencyManagement). */
    private static List<Element> children(Element project, String list, String item) {
        List<Element> items = new ArrayList<>();
        for (Element l : elements(project.getChildNodes(), list)) {
            items.addAll(elements(l.getChildNodes(), item));
        }
        return items;
    }

    private static List<Element> elements(NodeList nodes, String name) {
        List<Element> out = new ArrayList<>();
        for (int i = 0; i < nodes.getLength(); i++) {
            Node n = nodes.item(i);
            if (n instanceof Element e && e.getTagName().equals(name)) {
                out.add(e);
            }
        }
        return out;
    }

    private static String text(Element parent, String name) {
        List<Element> found = elements(parent.getChildNodes(), name);
        return found.isEmpty() ? "" : found.getFirst().getTextContent().trim();
    }
}
