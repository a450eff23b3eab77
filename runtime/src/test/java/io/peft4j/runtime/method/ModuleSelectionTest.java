package io.peft4j.runtime.method;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import io.peft4j.runtime.checkpoint.CheckpointException;
import io.peft4j.runtime.checkpoint.ConfigReader;
import java.nio.file.Path;
import java.util.List;
import java.util.stream.Stream;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.Arguments;
import org.junit.jupiter.params.provider.MethodSource;
import org.junit.jupiter.api.Test;

/**
 * PEFT's {@code check_target_module_exists} cases (its tests' REGEX_TEST_CASES: key, target_modules,
 * layers_to_transform, layers_pattern, expected), run through {@link ModuleSelection}.
 */
class ModuleSelectionTest {

    static Stream<Arguments> pefts() {
        return Stream.of(
                Arguments.of("", List.of(), null, null, false),
                Arguments.of("", List.of("foo"), null, null, false),
                Arguments.of("foo", List.of(), null, null, false),
                Arguments.of("foo", List.of("foo"), null, null, true),
                Arguments.of("foo", List.of("bar"), null, null, false),
                Arguments.of("foo", List.of("foo", "bar"), null, null, true),
                Arguments.of("foo", "foo", null, null, true),
                Arguments.of("foo", ".*oo", null, null, true),
                Arguments.of("foo", "fo.*", null, null, true),
                Arguments.of("foo", ".*bar.*", null, null, false),
                Arguments.of("foobar", ".*oba.*", null, null, true),
                Arguments.of("foo.bar.1.baz", List.of("baz"), List.of(1), List.of("bar"), true),
                Arguments.of("foo.bar.1.baz", List.of("baz"), List.of(0), List.of("bar"), false),
                Arguments.of("foo.bar.1.baz", List.of("baz"), List.of(2), List.of("bar"), false),
                Arguments.of("foo.bar.10.baz", List.of("baz"), List.of(0), List.of("bar"), false),
                Arguments.of("foo.bar.10.baz", List.of("baz"), List.of(1), List.of("bar"), false),
                Arguments.of("foo.bar.1.baz", List.of("baz"), List.of(0, 1, 2), List.of("bar"), true),
                Arguments.of("foo.bar.1.baz", List.of("baz", "spam"), List.of(1), List.of("bar"), true),
                Arguments.of("foo.whatever.1.baz", List.of("baz"), List.of(1), List.of(), true),
                Arguments.of("foo.whatever.1.baz", List.of("baz"), List.of(0), List.of(), false),
                Arguments.of("transformer.h.1.attn.attention.q_proj.foo", List.of("q_proj"), null, List.of(), false),
                Arguments.of("transformer.h.1.attn.attention.q_proj", List.of(), null, List.of(), false),
                Arguments.of("transformer.h.1.attn.attention.q_proj", List.of("q_proj"), null, List.of(), true),
                Arguments.of("transformer.h.1.attn.attention.resid_dropout", List.of("q_proj", "v_proj"), null, List.of(), false),
                Arguments.of("transformer.h.1.attn.attention.q_proj", List.of("q_proj"), List.of(1), List.of("h"), true),
                Arguments.of("transformer.h.1.attn.attention.q_proj", List.of("q_proj"), List.of(0), List.of("h"), false),
                Arguments.of("foo.bar.q_proj", List.of("q_proj"), null, List.of(), true),
                Arguments.of("foo.bar.1.baz", List.of("baz"), List.of(1), List.of("foo"), false),
                Arguments.of("foo.bar.1.baz", List.of("baz"), List.of(1), List.of("baz"), false),
                Arguments.of("bar.1.baz", List.of("baz"), List.of(1), List.of("bar"), false),
                Arguments.of("foo.bar.001.baz", List.of("baz"), List.of(1), List.of("bar"), true),
                Arguments.of("foo.bar.1.spam.2.baz", List.of("baz"), List.of(1), List.of("bar"), true),
                Arguments.of("foo.bar.2.spam.1.baz", List.of("baz"), List.of(1), List.of("bar"), false),
                Arguments.of("blocks.1.weight", List.of("weight"), List.of(1), List.of("blocks"), false),
                Arguments.of("mlp.blocks.1.weight", List.of("weight"), List.of(1), List.of("blocks"), true),
                Arguments.of("mlp.blocks.1.bias", List.of("weight"), List.of(1), List.of("blocks"), false));
    }

    @ParameterizedTest(name = "{0} with {1}, layers {2} {3}: {4}")
    @MethodSource("pefts")
    @SuppressWarnings("unchecked")
    void selectsAsPeftDoes(String key, Object targets, List<Integer> layers, List<String> patterns, boolean expected) {
        ModuleSelection selection = targets instanceof String regex ? ModuleSelection.ofRegex(regex) : ModuleSelection.of((List<String>) targets);
        selection = selection.withLayers(layers == null ? List.of() : layers, patterns == null ? List.of() : patterns);
        assertEquals(expected, selection.selects(key));
    }

    @Test
    void exclusionsWinAndModulesToSaveAreNeverTargets() {
        ModuleSelection selection = ModuleSelection.of(List.of("query", "value", "head"));
        assertTrue(selection.selects("layers.0.query"));
        assertEquals(ModuleSelection.Verdict.EXCLUDED, selection.withExclude(List.of("layers.0.query"), null).judge("layers.0.query"));
        assertEquals(ModuleSelection.Verdict.SELECTED, selection.withExclude(List.of("layers.0.query"), null).judge("layers.1.query"));
        assertEquals(ModuleSelection.Verdict.EXCLUDED, selection.withExclude(List.of(), "layers\\.[01]\\.value").judge("layers.1.value"));
        assertEquals(ModuleSelection.Verdict.NOT_TARGETED, selection.withExclude(List.of(), "value").judge("layers.1.key"));
        assertEquals(ModuleSelection.Verdict.EXCLUDED, selection.withModulesToSave(List.of("head")).judge("head"));
    }

    @Test
    void readsAndWritesPeftKeys() throws Exception {
        ObjectMapper json = new ObjectMapper();
        ObjectNode config = (ObjectNode) json.readTree("{\"target_modules\": [\"q\", \"v\"], \"exclude_modules\": \"h\\\\.0\\\\..*\","
                + " \"layers_to_transform\": 1, \"layers_pattern\": \"h\"}");
        ModuleSelection read = ModuleSelection.read(new ConfigReader(Path.of("adapter_config.json"), config), List.of());
        assertEquals(new ModuleSelection(List.of("q", "v"), null, List.of(), "h\\.0\\..*", List.of(1), List.of("h"), List.of()), read);
        ObjectNode written = json.createObjectNode();
        read.write(written);
        assertEquals(json.readTree("{\"target_modules\": [\"q\", \"v\"], \"exclude_modules\": \"h\\\\.0\\\\..*\","
                + " \"layers_to_transform\": [1], \"layers_pattern\": [\"h\"]}"), written);
        ObjectNode bad = (ObjectNode) json.readTree("{\"target_modules\": \"(q\"}");
        CheckpointException error = assertThrows(CheckpointException.class,
                () -> ModuleSelection.read(new ConfigReader(Path.of("adapter_config.json"), bad), List.of()));
        assertTrue(error.getMessage().contains("'target_modules' is not a valid regular expression"), error.getMessage());
    }
}
