package io.peft4j.runtime;

import io.peft4j.runtime.lora.LoraAdapter;
import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.testmodel.EagerLinear;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** Eager ({@code INDArray}) layers with PyTorch's {@code [out, in]} weight layout. */
class EagerLoraTest {

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    static final class Model {
        final EagerLinear projection = new EagerLinear(Nd4j.rand(DataType.FLOAT, 7, 9).subi(0.5)); // [out 7, in 9]
    }

    @Test
    void identityAtInitThenMergeMatchesUnmergedInOutInLayout() {
        Model model = new Model();
        INDArray x = Nd4j.rand(DataType.FLOAT, 4, 9);
        INDArray base = model.projection.forward(x).dup();
        PeftModel peft = PeftModel.attach(model);
        assertEquals(7, LoraAdapter.of(peft).layer("projection").out());
        assertEquals(9, LoraAdapter.of(peft).layer("projection").in());
        assertArrayEquals(base.data().asFloat(), model.projection.forward(x).data().asFloat(), 0f);

        LoraAdapter.of(peft).layer("projection").weights().b().assign(Nd4j.rand(DataType.FLOAT, 3, 7).subi(0.5));
        INDArray unmerged = model.projection.forward(x).dup();
        assertTrue(LoraGraphTest.maxRelativeDifference(base, unmerged) > 1e-3, "the branch contributes");
        INDArray weightBefore = model.projection.weight().dup();
        peft.merge();
        assertTrue(LoraGraphTest.maxRelativeDifference(unmerged, model.projection.forward(x)) < 1e-5);
        peft.unmerge();
        assertTrue(LoraGraphTest.maxRelativeDifference(weightBefore, model.projection.weight()) < 1e-6);
        // 7·9 base + 3·(9 + 7) LoRA
        assertEquals(new ParameterCount(48, 111), peft.parameterCount());
    }

    @Test
    void oneRowGivesItsRowOfTheManyRowsResultInAndOutOfASession() {
        Model model = new Model();
        PeftModel peft = PeftModel.attach(model);
        LoraAdapter.of(peft).layer("projection").weights().b().assign(Nd4j.rand(DataType.FLOAT, 3, 7).subi(0.5));
        INDArray x = Nd4j.rand(DataType.FLOAT, 4, 9);
        INDArray rows = model.projection.forward(x).dup();
        try (EagerSession session = new EagerSession()) {
            for (int i = 0; i < 4; i++) {
                INDArray row = x.getRow(i, true).dup();
                INDArray expected = rows.getRow(i, true);
                INDArray plain = model.projection.forward(row).dup();
                INDArray inSession = session.run(() -> model.projection.forward(row));
                assertTrue(LoraGraphTest.maxRelativeDifference(expected, plain) < 1e-5, "row " + i + " without a session: " + plain);
                assertTrue(LoraGraphTest.maxRelativeDifference(expected, inSession) < 1e-5, "row " + i + " in a session: " + inSession);
            }
            assertEquals(7, session.reusedCount(), "the ops of two products, the scaling and a sum and their three outputs, reused from row to row");
        }
    }
}
