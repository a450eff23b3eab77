package io.peft4j.agenttest;

import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraConfig;
import io.peft4j.runtime.lora.LoraLayer;
import java.util.List;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Run in a JVM of its own with {@code -javaagent:peft4j-agent.jar}: model code with no peft4j annotation
 * (as from a third party), adapted by name with {@code LoraConfig.targeting("query")}. Prints the adapted
 * layers and how far the output moved once every B is non-zero; exits with 1 if nothing moved.
 */
public final class UnannotatedProbe {

    /** {@code y = x · w}, {@code w [4, 4]}: no {@code @Weight}, no {@code @LoRA}, never seen by the processor. */
    public static final class VendorLinear {
        private final SDVariable w;

        VendorLinear(SameDiff sd, String name) {
            this.w = sd.var(name, Nd4j.linspace(DataType.FLOAT, 0.1, 0.1, 16).reshape(4, 4));
        }

        public SDVariable forward(SDVariable x) {
            return x.mmul(w);
        }
    }

    /** Two blocks of query and value projections. */
    public static final class VendorModel {
        final SameDiff sd = SameDiff.create();
        final List<VendorLinear[]> blocks = List.of(
                new VendorLinear[] {new VendorLinear(sd, "q0"), new VendorLinear(sd, "v0")},
                new VendorLinear[] {new VendorLinear(sd, "q1"), new VendorLinear(sd, "v1")});

        SDVariable forward(SDVariable x) {
            SDVariable h = x;
            for (VendorLinear[] block : blocks) {
                h = block[0].forward(h).add(block[1].forward(h));
            }
            return h;
        }
    }

    public static void main(String[] args) {
        VendorModel model = new VendorModel();
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, 4);
        SDVariable base = model.forward(x);
        PeftModel peft = PeftModel.builder(model).config(LoraConfig.targeting("blocks.0.0", "blocks.1.0").rank(2)).attach();
        LoraAdapter.of(peft).layerViews().forEach(layer -> layer.weights().b().assign(0.5));
        double change = AgentProbe.outputChange(model.sd, base, model.forward(x));
        System.out.println("LORA_BY_NAME layers=" + LoraAdapter.of(peft).layerViews().stream().map(LoraLayer::path).toList()
                + " change=" + change);
    }
}
