package io.peft4j.samples.transformer;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.agent.PeftAgent;
import io.peft4j.annotations.Adapter;
import io.peft4j.annotations.LoRA;
import io.peft4j.annotations.PrefixTuning;
import io.peft4j.annotations.PromptTuning;
import io.peft4j.runtime.AdapterScope;
import io.peft4j.runtime.PeftModel;
import java.lang.annotation.Annotation;
import java.util.Map;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * The sample transformer's eager forward (inference without a graph) against its SameDiff graph: the
 * base model and each method, with the adapters' zero-initialised parts given values so that every
 * adapter changes the output.
 */
class EagerForwardTest {

    private static final TransformerConfig TINY = new TransformerConfig(50, 6, 16, 2, 2, 32, 3);

    @BeforeAll
    static void installAgent() {
        PeftAgent.install();
    }

    @Test
    void eagerEqualsTheGraphForTheBase() {
        assertEagerEqualsGraph(null);
    }

    @Test
    void eagerEqualsTheGraphWithLora() {
        assertEagerEqualsGraph(LoRA.class);
    }

    @Test
    void eagerEqualsTheGraphWithBottleneckAdapters() {
        assertEagerEqualsGraph(Adapter.class);
    }

    @Test
    void eagerEqualsTheGraphWithPrefixTuning() {
        assertEagerEqualsGraph(PrefixTuning.class);
    }

    @Test
    void eagerEqualsTheGraphWithPromptTuning() {
        assertEagerEqualsGraph(PromptTuning.class);
    }

    private static void assertEagerEqualsGraph(Class<? extends Annotation> method) {
        TransformerClassifier model = new TransformerClassifier(SameDiff.create(), TINY, 3);
        SameDiff sd = model.sameDiff();
        INDArray tokens = Nd4j.createFromArray(new int[][] {{1, 7, 3, 49, 0, 12}, {5, 5, 8, 21, 33, 2}});
        INDArray base = model.forward(tokens);
        PeftModel peft = method == null ? null : PeftModel.builder(model).only(method).seed(4).attach();
        SDVariable input = sd.placeHolder("tokens", DataType.INT32, -1, TINY.sequenceLength());
        SDVariable logits = model.forward(input);
        randomiseZeroInitialisedParts(sd);

        INDArray graph = sd.output(Map.of("tokens", tokens), logits.name()).get(logits.name());
        INDArray eager = model.forward(tokens);

        assertArrayEquals(graph.shape(), eager.shape());
        double difference = graph.sub(eager).amaxNumber().doubleValue();
        assertTrue(difference < 1e-5, method + ": eager and graph logits differ by " + difference);
        if (peft != null) {
            assertTrue(eager.sub(base).amaxNumber().doubleValue() > 1e-3, method + " changes the eager logits");
            try (AdapterScope off = peft.disableAdapters()) {
                assertTrue(model.forward(tokens).sub(base).amaxNumber().doubleValue() < 1e-6, "disabled, eager is the base model");
            }
        }
    }

    /** LoRA's B and a bottleneck's up projection start at zero, which would hide a missing branch. */
    private static void randomiseZeroInitialisedParts(SameDiff sd) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(5);
        sd.variables().stream().filter(variable -> variable.getVariableType() == VariableType.VARIABLE)
                .filter(variable -> variable.name().contains("lora_B") || variable.name().contains(".adapter_up."))
                .forEach(variable -> variable.getArr().assign(Nd4j.randn(random, variable.getArr().shape()).castTo(DataType.FLOAT).muli(0.3)));
    }
}
