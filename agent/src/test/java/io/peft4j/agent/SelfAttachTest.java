package io.peft4j.agent;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.peft4j.agenttest.AgentProbe;
import io.peft4j.agenttest.Encoder;
import io.peft4j.agenttest.ProbeModel;
import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.internal.AgentStatus;
import java.util.Map;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/** {@link PeftAgent#install()} in this JVM, after the model classes were loaded (retransformation). */
class SelfAttachTest {

    @Test
    void installRetransformsLoadedLayersAndBranchesJoinTheirForwardCalls() throws ClassNotFoundException {
        // Loaded, never instantiated: retransforming it must not load Projection, its field's type,
        // where Byte Buddy's circularity lock would leave Projection uninstrumented for good.
        Class.forName("io.peft4j.agenttest.Encoder");
        ProbeModel loadedBeforeInstall = new ProbeModel();
        SDVariable x = loadedBeforeInstall.sd.placeHolder("x", DataType.FLOAT, -1, 4);
        SDVariable plain = loadedBeforeInstall.forward(x);

        PeftAgent.install();
        PeftAgent.install(); // idempotent
        assertTrue(AgentStatus.isInstalled());

        // Instrumented but not adapted: outputs are untouched.
        SDVariable instrumented = loadedBeforeInstall.forward(x);
        Map<String, INDArray> out = loadedBeforeInstall.sd.output(Map.of("x", Nd4j.ones(DataType.FLOAT, 2, 4)),
                plain.name(), instrumented.name());
        assertEquals(out.get(plain.name()), out.get(instrumented.name()));

        String line = AgentProbe.run();
        assertTrue(line.startsWith("LORA_BRANCH_INJECTED layers=[first, marked, tail.0]"), line);

        PeftModel peft = PeftModel.attach(new ProbeModel());
        assertEquals(1, LoraAdapter.of(peft).layer("marked").rank(), "the field annotation on a @Forward layer");

        Encoder encoder = new Encoder();
        LoraAdapter.of(PeftModel.attach(encoder)).layerViews().forEach(layer -> layer.weights().b().assign(1));
        SDVariable input = encoder.sd.placeHolder("x", DataType.FLOAT, -1, 3);
        SDVariable adapted = encoder.forward(input);
        INDArray ones = Nd4j.ones(DataType.FLOAT, 2, 3);
        INDArray base = ones.mmul(encoder.sd.getVariable("projection").getArr());
        assertNotEquals(base, encoder.sd.output(Map.of("x", ones), adapted.name()).get(adapted.name()),
                "the LoRA branch of a layer class first loaded while install() retransformed another joins its forward");
    }
}
