package io.peft4j.agenttest;

import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.ia3.Ia3Adapter;
import io.peft4j.runtime.ia3.Ia3Config;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Run in a JVM of its own with {@code -javaagent:peft4j-agent.jar}: an (IA)³ feed-forward vector on an
 * unannotated layer. The agent's entry advice rescales the input, so the graph has one product per
 * layer and the output is {@code (x ⊙ l) · w}. Prints the number of products and the largest
 * difference from that formula.
 */
public final class Ia3Probe {

    /** {@code y = x · w}, {@code w [4, 4]}. */
    public static final class Projection {
        private final SDVariable w;

        Projection(SameDiff sd) {
            this.w = sd.var("w", Nd4j.linspace(DataType.FLOAT, 0.1, 0.1, 16).reshape(4, 4));
        }

        public SDVariable forward(SDVariable x) {
            return x.mmul(w);
        }
    }

    public static final class Model {
        final SameDiff sd = SameDiff.create();
        final Projection down = new Projection(sd);
    }

    public static void main(String[] args) {
        Model model = new Model();
        SDVariable x = model.sd.placeHolder("x", DataType.FLOAT, -1, 4);
        PeftModel peft = PeftModel.builder(model).config(Ia3Config.targeting("down").feedforward("down")).attach();
        INDArray l = Ia3Adapter.of(peft, "default").vector("down");
        l.assign(Nd4j.createFromArray(0.5f, 1.5f, 2f, 3f));
        SDVariable y = model.down.forward(x);
        INDArray in = Nd4j.linspace(DataType.FLOAT, -1, 0.25, 8).reshape(2, 4);
        INDArray actual = model.sd.output(Map.of("x", in), y.name()).get(y.name());
        INDArray expected = in.mulRowVector(l).mmul(model.down.w.getArr());
        long products = model.sd.getOps().values().stream().filter(op -> op.getOp().opName().equals("matmul")).count();
        System.out.println("IA3_INPUT_RESCALED products=" + products + " difference=" + actual.sub(expected).amaxNumber().doubleValue());
    }
}
