package com.example.intent;

import io.peft4j.annotations.LoRA;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.Random;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;

/**
 * Features {@code [batch, 32]} → hidden {@code [32, 64]} → tanh → output {@code [64, 4]} → logits
 * {@code [batch, 4]}. The two {@code @LoRA} fields are everything this model does to be fine-tuned with
 * peft4j.
 */
public final class IntentModel {
    public static final int FEATURES = 32;
    public static final int HIDDEN = 64;
    public static final int INTENTS = 4;

    final SameDiff sd;
    @LoRA(rank = 4, alpha = 8)
    final Dense hidden;
    @LoRA(rank = 4, alpha = 8)
    final Dense output;

    public IntentModel(long seed) {
        this.sd = SameDiff.create();
        Random random = new Random(seed);
        this.hidden = new Dense(sd, "hidden", FEATURES, HIDDEN, random);
        this.output = new Dense(sd, "output", HIDDEN, INTENTS, random);
    }

    /** {@code [batch, 32]} to logits {@code [batch, 4]}. */
    public SDVariable logits(SDVariable features) {
        return output.forward(sd.math.tanh(hidden.forward(features)));
    }

    public SameDiff sameDiff() {
        return sd;
    }

    /** Copies of the model's own weights, by variable name: what its checkpoint holds. */
    public Map<String, INDArray> weights() {
        Map<String, INDArray> weights = new LinkedHashMap<>();
        for (String name : new String[] {"hidden.weight", "hidden.bias", "output.weight", "output.bias"}) {
            weights.put(name, sd.getVariable(name).getArr().dup());
        }
        return weights;
    }

    /** Loads weights saved by {@link #weights()}. */
    public void load(Map<String, INDArray> weights) {
        weights.forEach((name, value) -> sd.getVariable(name).getArr().assign(value));
    }
}
