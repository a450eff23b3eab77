package io.peft4j.runtime;

import io.peft4j.annotations.PromptTuning;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.runtime.prefix.PrefixTuningAdapter;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.ProjectedSequenceModel;
import io.peft4j.runtime.testmodel.SequenceModel;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.TrainingConfig;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.dataset.MultiDataSet;
import org.nd4j.linalg.dataset.adapter.SingletonMultiDataSetIterator;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;
import org.nd4j.linalg.learning.config.Adam;

/** Prompt tuning on the embedding output and prefix tuning on attention keys and values. */
class PromptAndPrefixTuningTest {

    private static final int BATCH = 6;
    private static final int T = 5;

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    /** Placeholders tokens [B, T], queryMask [B, -1], keyMask [B, -1]. */
    private record Inputs(SDVariable tokens, SDVariable queryMask, SDVariable keyMask) {
        static Inputs of(SameDiff sd) {
            return new Inputs(sd.placeHolder("tokens", DataType.INT32, -1, T), sd.placeHolder("queryMask", DataType.DOUBLE, -1, -1),
                    sd.placeHolder("keyMask", DataType.DOUBLE, -1, -1));
        }
    }

    private static INDArray tokens() {
        return Nd4j.createFromArray(new int[][] {{1, 2, 3, 4, 5}, {5, 4, 3, 2, 1}, {0, 0, 9, 9, 1}, {7, 1, 7, 1, 7},
                {2, 3, 5, 7, 8}, {9, 8, 7, 6, 5}});
    }

    /** {@code hidden} zeros, then ones, per row: a mask of length hidden + visible. */
    private static INDArray mask(int hidden, int visible) {
        INDArray mask = Nd4j.ones(DataType.DOUBLE, BATCH, hidden + visible);
        if (hidden > 0) {
            mask.get(NDArrayIndex.all(), NDArrayIndex.interval(0, hidden)).assign(0);
        }
        return mask;
    }

    private static INDArray run(SameDiff sd, SDVariable output, INDArray queryMask, INDArray keyMask) {
        return sd.output(Map.of("tokens", tokens(), "queryMask", queryMask, "keyMask", keyMask), output.name()).get(output.name());
    }

    @Test
    void promptHiddenByTheMaskLeavesTheOutputsAsTheBase() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 1);
        Inputs in = Inputs.of(model.sd);
        SDVariable base = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        PeftModel peft = PeftModel.builder(model).only(PromptTuning.class).attach();
        SDVariable adapted = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        INDArray expected = run(model.sd, base, mask(0, T), mask(0, T));
        INDArray hidden = run(model.sd, adapted, mask(3, T), mask(3, T));
        assertTrue(expected.equalsWithEps(hidden, 1e-12), expected + " vs " + hidden);
        INDArray visible = run(model.sd, adapted, mask(0, 3 + T), mask(0, 3 + T));
        assertTrue(!expected.equalsWithEps(visible, 1e-6), "a visible prompt changes the outputs");
        assertEquals(new ParameterCount(3 * SequenceModel.WIDTH, 3 * 4 + 10 * 4 + 3 * 16 + 4 * 2), peft.parameterCount());
    }

    @Test
    void gradientsReachOnlyThePromptRows() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 2);
        Inputs in = Inputs.of(model.sd);
        PeftModel.builder(model).only(PromptTuning.class).attach();
        SDVariable out = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        model.sd.setLossVariables(model.sd.math.square(out).sum().rename("loss").name());
        Map<String, INDArray> gradients = model.sd.calculateGradients(
                Map.of("tokens", tokens(), "queryMask", mask(0, 3 + T), "keyMask", mask(0, 3 + T)), trainable(model.sd));
        assertEquals(Set.of("embedding.prompt_embeddings.default"), gradients.keySet());
        INDArray rows = gradients.get("embedding.prompt_embeddings.default");
        for (int row = 0; row < 3; row++) {
            assertTrue(rows.getRow(row).amaxNumber().doubleValue() > 0, "row " + row + " receives a gradient");
        }
    }

    private static List<String> trainable(SameDiff sd) {
        return sd.variables().stream().filter(variable -> variable.getVariableType() == VariableType.VARIABLE)
                .map(SDVariable::name).toList();
    }

    @Test
    void prefixOfLengthZeroEqualsTheBase() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 3);
        Inputs in = Inputs.of(model.sd);
        SDVariable base = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        PeftModel.builder(model).only(PrefixTuning.class).virtualTokens(0).attach();
        SDVariable adapted = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        assertArrayEquals(run(model.sd, base, mask(0, T), mask(0, T)).data().asDouble(),
                run(model.sd, adapted, mask(0, T), mask(0, T)).data().asDouble(), 0.0);
    }

    @Test
    void keysAndValuesGrowByThePrefixAndAHiddenPrefixChangesNothing() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 4);
        Inputs in = Inputs.of(model.sd);
        SDVariable base = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        PeftModel peft = PeftModel.builder(model).only(PrefixTuning.class).attach();
        SDVariable adapted = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        INDArray keys = run(model.sd, model.lastKeys, mask(0, T), mask(0, 2 + T));
        assertArrayEquals(new long[] {BATCH, 2 + T, SequenceModel.WIDTH}, keys.shape());
        INDArray expected = run(model.sd, base, mask(0, T), mask(0, T));
        assertTrue(expected.equalsWithEps(run(model.sd, adapted, mask(0, T), mask(2, T)), 1e-12));
        assertTrue(!expected.equalsWithEps(run(model.sd, adapted, mask(0, T), mask(0, 2 + T)), 1e-6));
        assertEquals(2 * 2 * SequenceModel.WIDTH, peft.parameterCount().trainable(), "keys and values, [2, 4] each");
    }

    @Test
    void prefixGradientsReachOnlyThePrefixes() {
        SequenceModel model = new SequenceModel(DataType.DOUBLE, 5);
        Inputs in = Inputs.of(model.sd);
        PeftModel.builder(model).only(PrefixTuning.class).attach();
        SDVariable out = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        model.sd.setLossVariables(model.sd.math.square(out).sum().rename("loss").name());
        Map<String, INDArray> gradients = model.sd.calculateGradients(
                Map.of("tokens", tokens(), "queryMask", mask(0, T), "keyMask", mask(0, 2 + T)), trainable(model.sd));
        assertEquals(Set.of("attention.prefix_keys.default", "attention.prefix_values.default"), gradients.keySet());
        gradients.forEach((name, gradient) -> assertTrue(gradient.amaxNumber().doubleValue() > 0, name));
    }

    @Test
    void projectedPrefixesTrainTheEmbeddingAndMlpAndSaveOnlyThePrefixes() {
        ProjectedSequenceModel model = new ProjectedSequenceModel(DataType.DOUBLE, 6);
        SameDiff sd = model.inner.sd;
        Inputs in = Inputs.of(sd);
        PeftModel peft = PeftModel.builder(model).only(PrefixTuning.class).attach();
        SDVariable out = model.forward(in.tokens(), in.queryMask(), in.keyMask());
        sd.setLossVariables(sd.math.square(out).sum().rename("loss").name());
        Map<String, INDArray> gradients = sd.calculateGradients(
                Map.of("tokens", tokens(), "queryMask", mask(0, T), "keyMask", mask(0, 2 + T)), trainable(sd));
        assertEquals(new TreeSet<>(List.of("prefix_encoder.default.embedding", "prefix_encoder.default.dense1.weight",
                "prefix_encoder.default.dense1.bias", "prefix_encoder.default.dense2.weight", "prefix_encoder.default.dense2.bias")), new TreeSet<>(gradients.keySet()));
        assertArrayEquals(new long[] {2, 2 * SequenceModel.WIDTH}, PrefixTuningAdapter.of(peft, "default").prefixes().shape(),
                "PEFT's prompt_embeddings [n, layers·2·d]");
        INDArray graphKeys = run(sd, model.inner.lastKeys, mask(0, T), mask(0, 2 + T))
                .get(NDArrayIndex.point(0), NDArrayIndex.interval(0, 2), NDArrayIndex.all());
        INDArray evaluatedKeys = PrefixTuningAdapter.of(peft, "default").prefixes().get(NDArrayIndex.all(), NDArrayIndex.interval(0, SequenceModel.WIDTH));
        assertTrue(evaluatedKeys.equalsWithEps(graphKeys, 1e-12), "prefixes() evaluates what the graph uses");
    }

    @Test
    void promptAndPrefixTrainingLowerTheLoss() {
        for (Class<? extends java.lang.annotation.Annotation> method : List.of(PromptTuning.class, PrefixTuning.class)) {
            SequenceModel model = new SequenceModel(DataType.FLOAT, 7);
            SameDiff sd = model.sd;
            SDVariable tokens = sd.placeHolder("tokens", DataType.INT32, -1, T);
            SDVariable queryMask = sd.placeHolder("queryMask", DataType.FLOAT, -1, -1);
            SDVariable keyMask = sd.placeHolder("keyMask", DataType.FLOAT, -1, -1);
            SDVariable labels = sd.placeHolder("labels", DataType.FLOAT, -1, 2);
            PeftModel peft = PeftModel.builder(model).only(method).attach();
            sd.loss.softmaxCrossEntropy("loss", labels, model.forward(tokens, queryMask, keyMask), null);
            int length = method == PromptTuning.class ? 3 + T : T;
            int keys = method == PrefixTuning.class ? 2 + T : length;
            // One class for every sequence: a shared prompt or prefix can learn that shift.
            INDArray labelRows = Nd4j.createFromArray(new float[][] {{1, 0}, {1, 0}, {1, 0}, {1, 0}, {1, 0}, {1, 0}});
            MultiDataSet data = new MultiDataSet(new INDArray[] {tokens(), mask(0, length).castTo(DataType.FLOAT),
                    mask(0, keys).castTo(DataType.FLOAT)}, new INDArray[] {labelRows});
            TrainingConfig config = TrainingConfig.builder().updater(new Adam(0.05))
                    .dataSetFeatureMapping("tokens", "queryMask", "keyMask").dataSetLabelMapping("labels").build();
            TrainingReport report = peft.train(config, new SingletonMultiDataSetIterator(data), 60, new ProgressListener(null, 10));
            assertTrue(report.meanOfLast(5) < 0.7 * report.meanOfFirst(5),
                    method + ": loss fell from " + report.meanOfFirst(5) + " to " + report.meanOfLast(5));
        }
    }
}
