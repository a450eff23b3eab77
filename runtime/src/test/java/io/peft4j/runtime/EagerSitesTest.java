package io.peft4j.runtime;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import io.peft4j.runtime.bridge.ForwardDispatcher;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.AdapterTestModel;
import io.peft4j.runtime.testmodel.ProjectedSequenceModel;
import io.peft4j.runtime.testmodel.SequenceModel;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.memory.MemoryWorkspace;
import org.nd4j.linalg.api.memory.conf.WorkspaceConfiguration;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * Prompt tuning, prefix tuning and bottleneck adapters in eager ({@code INDArray}) forward calls: the
 * same outputs as the graph of the same model, only the adapters that are on, none while disabled.
 */
class EagerSitesTest {

    private static final INDArray TOKENS = Nd4j.createFromArray(new int[][] {{1, 2, 3, 4, 5}, {5, 4, 3, 2, 1}, {0, 9, 9, 1, 7}});

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    /** The graph of {@code model}'s forward over {@link #TOKENS} with every position visible, run once. */
    private interface SequenceForward {
        SDVariable build(SDVariable tokens, SDVariable queryMask, SDVariable keyMask);
    }

    private static INDArray graphOutput(SameDiff sd, SequenceForward forward, long queries, long keys) {
        SDVariable tokens = sd.placeHolder("tokens", DataType.INT32, -1, 5);
        SDVariable output = forward.build(tokens, sd.placeHolder("queryMask", DataType.DOUBLE, -1, -1),
                sd.placeHolder("keyMask", DataType.DOUBLE, -1, -1));
        return sd.output(Map.of("tokens", TOKENS, "queryMask", visible(queries), "keyMask", visible(keys)), output.name())
                .get(output.name());
    }

    private static INDArray visible(long positions) {
        return Nd4j.ones(DataType.DOUBLE, TOKENS.size(0), positions);
    }

    private static void assertClose(INDArray expected, INDArray actual, double tolerance) {
        double difference = expected.sub(actual).amaxNumber().doubleValue();
        assertTrue(difference <= tolerance, "eager differs from the graph by " + difference + ": " + expected + " vs " + actual);
    }

    @Test
    void promptRowsGoInFrontOfTheEagerEmbeddingAsInTheGraph() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 1);
        PeftModel peft = PeftModel.builder(model).only(PromptTuning.class).attach();
        INDArray graph = graphOutput(model.sd, model::forward, 3 + 5, 3 + 5);

        assertClose(graph, model.forward(TOKENS, visible(3 + 5), visible(3 + 5)), 1e-12);
        try (AdapterScope off = peft.disableAdapters()) {
            INDArray base = model.forward(TOKENS, visible(5), visible(5));
            assertTrue(graph.sub(base).amaxNumber().doubleValue() > 1e-3, "the prompt changes the output");
        }
    }

    @Test
    void prefixesGoInFrontOfTheEagerKeysAndValuesAsInTheGraph() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 2);
        PeftModel.builder(model).only(PrefixTuning.class).attach();
        INDArray graph = graphOutput(model.sd, model::forward, 5, 2 + 5);

        assertClose(graph, model.forward(TOKENS, visible(5), visible(2 + 5)), 1e-12);
    }

    @Test
    void projectedPrefixesAreTheProjectionMlpsOutputEagerly() {
        ProjectedSequenceModel model = new ProjectedSequenceModel(DataType.DOUBLE, 3);
        PeftModel.builder(model).only(PrefixTuning.class).attach();
        INDArray graph = graphOutput(model.inner.sd, model::forward, 5, 2 + 5);

        assertClose(graph, model.forward(TOKENS, visible(5), visible(2 + 5)), 1e-12);
    }

    @Test
    void onlyTheAdaptersOnAtTheCallPrependRowsAndNoneLeavesTheBase() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 4);
        INDArray base = model.forward(TOKENS, visible(5), visible(5));
        PeftModel peft = PeftModel.builder(model).only(PrefixTuning.class).attach();
        peft.addAdapter("second", AdapterOptions.defaults().withMethods(PrefixTuning.class).withSeed(17));
        INDArray first = model.forward(TOKENS, visible(5), visible(2 + 5));
        peft.setAdapter("second");
        INDArray second = model.forward(TOKENS, visible(5), visible(2 + 5));
        assertTrue(first.sub(second).amaxNumber().doubleValue() > 1e-3, "each adapter has its own prefixes");

        peft.setAdapters();
        assertClose(base, model.forward(TOKENS, visible(5), visible(5)), 0);
        peft.setAdapter("default");
        assertClose(first, model.forward(TOKENS, visible(5), visible(2 + 5)), 0);
    }

    @Test
    void bottleneckModulesFollowTheEagerLayersAsInTheGraph() {
        AdapterTestModel model = new AdapterTestModel(DataType.DOUBLE, 5);
        PeftModel peft = PeftModel.builder(model).only(Adapter.class).attach();
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, AdapterTestModel.IN);
        SDVariable output = model.forward(x);
        // Zero-initialised up projections make every module the identity: give them values.
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(6);
        model.sd.variables().stream().filter(variable -> variable.getVariableType() == VariableType.VARIABLE)
                .filter(variable -> variable.name().contains(".adapter_up."))
                .forEach(variable -> variable.getArr().assign(Nd4j.randn(random, variable.getArr().shape()).castTo(DataType.DOUBLE)));
        INDArray input = Nd4j.rand(random, 4, AdapterTestModel.IN).castTo(DataType.DOUBLE);
        INDArray graph = model.sd.output(Map.of("x", input), output.name()).get(output.name());

        assertClose(graph, model.forward(input), 1e-12);
        try (AdapterScope off = peft.disableAdapters()) {
            INDArray base = model.forward(input);
            assertTrue(graph.sub(base).amaxNumber().doubleValue() > 1e-3, "the modules change the output");
        }
    }

    @Test
    void anEagerBottleneckCreatesItsModuleInTheLayersGraph() {
        AdapterTestModel model = new AdapterTestModel(DataType.DOUBLE, 7);
        PeftModel peft = PeftModel.builder(model).only(Adapter.class).attach();
        INDArray input = Nd4j.rand(DataType.DOUBLE, 2, AdapterTestModel.IN);

        INDArray eager = model.forward(input);

        assertEquals(8 * 3 + 3 + 3 * 8 + 8 + 4 * 2 + 2 + 2 * 4 + 4, peft.parameterCount().trainable(),
                "modules of width 8 (b = 3) and 4 (b = 2) exist after one eager call");
        assertTrue(model.sd.hasVariable("hidden.adapters.default.adapter_down.weight"));
        assertClose(eager, model.forward(input), 0);
    }

    @Test
    void aModuleCreatedByAnEagerCallInsideAWorkspaceOutlivesIt() {
        AdapterTestModel model = new AdapterTestModel(DataType.DOUBLE, 10);
        PeftModel.builder(model).only(Adapter.class).attach();
        INDArray input = Nd4j.rand(DataType.DOUBLE, 2, AdapterTestModel.IN);
        try (MemoryWorkspace step = Nd4j.getWorkspaceManager().getAndActivateWorkspace(WorkspaceConfiguration.builder().build(), "step")) {
            model.forward(input);
        }
        SDVariable x = model.sd.placeHolder("x", DataType.DOUBLE, -1, AdapterTestModel.IN);
        SDVariable output = model.forward(x);

        INDArray graph = model.sd.output(Map.of("x", input), output.name()).get(output.name());

        assertClose(graph, model.forward(input), 1e-12);
    }

    @Test
    void anEagerPrependOfTheWrongWidthSaysWhatItGot() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 8);
        PeftModel.builder(model).only(PromptTuning.class).attach();
        PeftException wrong = assertThrows(PeftException.class,
                () -> ForwardDispatcher.afterForward(embeddingOf(model), TOKENS, Nd4j.zeros(3, 5, 7)));
        assertTrue(wrong.getMessage().contains("[3, 5, 7]") && wrong.getMessage().contains("embedding"), wrong.getMessage());
    }

    @Test
    void oneSequenceWithoutABatchAxisGetsTheRowsInFront() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 9);
        PeftModel.builder(model).only(PromptTuning.class).attach();
        INDArray sequence = Nd4j.rand(DataType.DOUBLE, 5, SequenceModel.WIDTH);

        INDArray out = (INDArray) ForwardDispatcher.afterForward(embeddingOf(model), TOKENS.getRow(0), sequence);

        assertArrayEquals(new long[] {3 + 5, SequenceModel.WIDTH}, out.shape());
        assertEquals(model.sd.getVariable("embedding.prompt_embeddings.default").getArr(), out.get(NDArrayIndex.interval(0, 3),
                NDArrayIndex.all()));
        assertEquals(sequence, out.get(NDArrayIndex.interval(3, 8), NDArrayIndex.all()));
    }

    private static Object embeddingOf(SequenceModel model) {
        try {
            var field = SequenceModel.class.getDeclaredField("embedding");
            field.setAccessible(true);
            return field.get(model);
        } catch (ReflectiveOperationException e) {
            throw new AssertionError(e);
        }
    }
}
