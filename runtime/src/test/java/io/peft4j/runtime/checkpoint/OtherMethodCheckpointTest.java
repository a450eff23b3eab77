package io.peft4j.runtime.checkpoint;

import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.PromptTuning;
import io.peft4j.annotations.PrefixTuning;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.AdapterTestModel;
import io.peft4j.runtime.testmodel.ProjectedSequenceModel;
import io.peft4j.runtime.testmodel.SequenceModel;
import java.nio.file.Path;
import java.util.Map;
import java.util.function.BiFunction;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Save → load → identical outputs for prompt tuning, prefix tuning and bottleneck adapters. */
class OtherMethodCheckpointTest {

    @TempDir
    Path dir;

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static final INDArray TOKENS = Nd4j.createFromArray(new int[][] {{1, 2, 3, 4, 5}, {9, 8, 7, 6, 5}});

    /** Builds the sequence graph and returns its output for all-visible masks of the given lengths. */
    private static double[] sequenceOutput(SameDiff sd, BiFunction<SDVariable[], SameDiff, SDVariable> forward, int queries, int keys) {
        SDVariable tokens = sd.placeHolder("tokens", DataType.INT32, -1, 5);
        SDVariable queryMask = sd.placeHolder("queryMask", DataType.DOUBLE, -1, -1);
        SDVariable keyMask = sd.placeHolder("keyMask", DataType.DOUBLE, -1, -1);
        SDVariable out = forward.apply(new SDVariable[] {tokens, queryMask, keyMask}, sd);
        return sd.output(Map.of("tokens", TOKENS, "queryMask", Nd4j.ones(DataType.DOUBLE, 2, queries),
                "keyMask", Nd4j.ones(DataType.DOUBLE, 2, keys)), out.name()).get(out.name()).data().asDouble();
    }

    @Test
    void promptTuningRoundTrip() throws Exception {
        SequenceModel saved = new SequenceModel(DataType.DOUBLE, 1);
        PeftModel peft = PeftModel.builder(saved).only(PromptTuning.class).seed(1).attach();
        double[] expected = sequenceOutput(saved.sd, (in, sd) -> saved.forward(in[0], in[1], in[2]), 8, 8);
        peft.save(dir);
        JsonNode config = new ObjectMapper().readTree(dir.resolve(AdapterCheckpoint.CONFIG_FILE).toFile());
        assertEquals("PROMPT_TUNING", config.get("peft_type").asText());
        assertEquals(3, config.get("num_virtual_tokens").asInt());
        assertArrayEquals(new long[] {3, 4}, SafetensorsFile.readHeader(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE))
                .tensor("prompt_embeddings").shape());

        SequenceModel fresh = new SequenceModel(DataType.DOUBLE, 1);
        PeftModel.builder(fresh).only(PromptTuning.class).seed(99).attach().load(dir);
        assertArrayEquals(expected, sequenceOutput(fresh.sd, (in, sd) -> fresh.forward(in[0], in[1], in[2]), 8, 8), 0.0);
    }

    @Test
    void prefixTuningRoundTrip() {
        SequenceModel saved = new SequenceModel(DataType.DOUBLE, 2);
        PeftModel peft = PeftModel.builder(saved).only(PrefixTuning.class).seed(1).attach();
        double[] expected = sequenceOutput(saved.sd, (in, sd) -> saved.forward(in[0], in[1], in[2]), 5, 7);
        peft.save(dir);
        assertArrayEquals(new long[] {2, 8}, SafetensorsFile.readHeader(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE))
                .tensor("prompt_embeddings").shape(), "PEFT's [n, layers·2·d]");

        SequenceModel fresh = new SequenceModel(DataType.DOUBLE, 2);
        PeftModel.builder(fresh).only(PrefixTuning.class).seed(99).attach().load(dir);
        assertArrayEquals(expected, sequenceOutput(fresh.sd, (in, sd) -> fresh.forward(in[0], in[1], in[2]), 5, 7), 0.0);
    }

    @Test
    void projectedPrefixesAreSavedAsTheirResultAndLoadWithoutTheMlp() {
        ProjectedSequenceModel saved = new ProjectedSequenceModel(DataType.DOUBLE, 3);
        PeftModel peft = PeftModel.builder(saved).only(PrefixTuning.class).seed(1).attach();
        double[] expected = sequenceOutput(saved.inner.sd, (in, sd) -> saved.forward(in[0], in[1], in[2]), 5, 7);
        peft.save(dir);

        ProjectedSequenceModel fresh = new ProjectedSequenceModel(DataType.DOUBLE, 3);
        PeftModel loaded = PeftModel.builder(fresh).only(PrefixTuning.class).seed(99).attach();
        loaded.load(dir);
        double[] actual = sequenceOutput(fresh.inner.sd, (in, sd) -> fresh.forward(in[0], in[1], in[2]), 5, 7);
        for (int i = 0; i < expected.length; i++) {
            assertEquals(expected[i], actual[i], 1e-6, "the prefixes are stored as F32");
        }
        assertEquals(2 * 2 * 4, loaded.parameterCount().trainable(), "after loading, the prefixes themselves are the parameters");
    }

    @Test
    void bottleneckAdaptersRoundTripWithAdapterHubKeys() {
        AdapterTestModel saved = new AdapterTestModel(DataType.DOUBLE, 4);
        PeftModel peft = PeftModel.builder(saved).only(Adapter.class).attach();
        SDVariable x = saved.sd.placeHolder("x", DataType.DOUBLE, -1, AdapterTestModel.IN);
        SDVariable out = saved.forward(x);
        for (String name : saved.sd.variables().stream().map(SDVariable::name).filter(name -> name.contains(".adapters.default.adapter_"))
                .toList()) {
            INDArray parameter = saved.sd.getVariable(name).getArr();
            parameter.assign(Nd4j.rand(parameter.shape()));
        }
        INDArray input = Nd4j.rand(DataType.DOUBLE, 3, AdapterTestModel.IN);
        double[] expected = saved.sd.output(Map.of("x", input), out.name()).get(out.name()).data().asDouble();
        peft.save(dir);
        SafetensorsHeader header = SafetensorsFile.readHeader(dir.resolve(AdapterCheckpoint.WEIGHTS_FILE));
        assertArrayEquals(new long[] {3, 8}, header.tensor("base_model.model.hidden.adapters.default.adapter_down.0.weight").shape());
        assertArrayEquals(new long[] {8, 3}, header.tensor("base_model.model.hidden.adapters.default.adapter_up.weight").shape());

        AdapterTestModel fresh = new AdapterTestModel(DataType.DOUBLE, 4);
        PeftModel.builder(fresh).only(Adapter.class).attach().load(dir); // before the graph exists
        SDVariable freshX = fresh.sd.placeHolder("x", DataType.DOUBLE, -1, AdapterTestModel.IN);
        SDVariable freshOut = fresh.forward(freshX);
        assertArrayEquals(expected, fresh.sd.output(Map.of("x", input), freshOut.name()).get(freshOut.name()).data().asDouble(), 0.0);
    }

    @Test
    void anAdapterOfAnotherMethodIsRefused() {
        SequenceModel prompted = new SequenceModel(DataType.DOUBLE, 5);
        PeftModel.builder(prompted).only(PromptTuning.class).attach().save(dir);
        PeftModel prefixed = PeftModel.builder(new SequenceModel(DataType.DOUBLE, 5)).only(PrefixTuning.class).attach();
        CheckpointException error = assertThrows(CheckpointException.class, () -> prefixed.load(dir));
        assertTrue(error.getMessage().contains("holds a PROMPT_TUNING adapter, but adapter 'default' is PREFIX_TUNING"),
                error.getMessage());
        PeftModel both = PeftModel.builder(new SequenceModel(DataType.DOUBLE, 5)).attach();
        CheckpointException mixed = assertThrows(CheckpointException.class, () -> both.save(dir.resolve("both")));
        assertTrue(mixed.getMessage().contains("give each method its own adapter"), mixed.getMessage());
    }
}
