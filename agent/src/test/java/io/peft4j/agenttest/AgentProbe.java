package io.peft4j.agenttest;

import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Run in a JVM of its own with {@code -javaagent:peft4j-agent.jar}: attaches LoRA to a
 * {@link ProbeModel}, gives every B a non-zero value and prints how far the adapted output moved
 * from the base output. Exits with 1 if no branch joined the graph.
 */
public final class AgentProbe {

    public static void main(String[] args) {
        System.out.println(run());
    }

    /** Returns the line {@code LORA_BRANCH_INJECTED layers=[...] change=<max |adapted − base|>}. */
    public static String run() {
        ProbeModel model = new ProbeModel();
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, 4);
        SDVariable base = model.forward(x);
        PeftModel peft = PeftModel.attach(model);
        LoraAdapter.of(peft).layerViews().forEach(layer -> layer.weights().b().assign(0.5));
        double change = outputChange(model.sd, base, model.forward(x));
        return "LORA_BRANCH_INJECTED layers=" + LoraAdapter.of(peft).layerViews().stream().map(LoraLayer::path).toList() + " change=" + change;
    }

    /**
     * {@code max |adapted − base|} for an input of ones {@code [2, 4]} in placeholder {@code x}; exits the
     * JVM with 1 when it is zero, i.e. when no branch joined the graph.
     */
    static double outputChange(SameDiff sd, SDVariable base, SDVariable adapted) {
        Map<String, INDArray> out = sd.output(Map.of("x", Nd4j.ones(DataType.FLOAT, 2, 4)), base.name(), adapted.name());
        double change = out.get(adapted.name()).sub(out.get(base.name())).amaxNumber().doubleValue();
        if (change == 0) {
            System.out.println("NO_LORA_BRANCH: the forward methods were not instrumented");
            System.exit(1);
        }
        return change;
    }
}
