package io.peft4j.samples.transformer;

import io.peft4j.annotations.PromptInit;
import io.peft4j.annotations.PromptTuning;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A small transformer encoder that classifies token sequences: embeddings, {@code layers} encoder
 * blocks, mean pooling over the sequence and a linear classifier.
 *
 * <p>Input {@code tokens [batch, T]} (INT32), hidden states {@code [batch, T, d]} (or
 * {@code [batch, n + T, d]} with a prompt of {@code n} virtual tokens, which mean pooling averages
 * over like the real ones), output {@code logits [batch, classes]}. Plain
 * annotated Java: LoRA is declared on {@link SelfAttention}'s query and value fields, a bottleneck
 * adapter and prefix tuning on each {@link EncoderLayer}, prompt tuning on the embedding; a
 * {@code PeftModel} activates the methods it is asked for, and nothing here refers to peft4j's runtime. Variables are named by field path
 * ({@code layers.0.attention.query.weight}).
 */
public final class TransformerClassifier {
    final TransformerConfig config;
    final SameDiff sd;
    @PromptTuning(virtualTokens = 8, init = PromptInit.VOCAB_SAMPLE)
    final Embedding embedding;
    final List<EncoderLayer> layers = new ArrayList<>();
    final Linear classifier;

    public TransformerClassifier(SameDiff sd, TransformerConfig config, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        this.config = config;
        this.sd = sd;
        this.embedding = new Embedding(sd, "embedding", config.vocabulary(), config.sequenceLength(), config.hidden(), random);
        for (int i = 0; i < config.layers(); i++) {
            layers.add(new EncoderLayer(sd, "layers." + i, config, random));
        }
        this.classifier = new Linear(sd, "classifier", config.hidden(), config.classes(), random);
    }

    /** {@code tokens [batch, T] → logits [batch, classes]}. */
    public SDVariable forward(SDVariable tokens) {
        SDVariable h = embedding.forward(tokens);
        for (EncoderLayer layer : layers) {
            h = layer.forward(h);
        }
        SDVariable pooled = h.mean(1);
        return classifier.forward(pooled);
    }

    /** Per-token logits, {@code tokens [batch, T] → [batch, T', classes]} ({@code T' = n + T} with a prompt). */
    public SDVariable tokenLogits(SDVariable tokens) {
        SDVariable h = embedding.forward(tokens);
        for (EncoderLayer layer : layers) {
            h = layer.forward(h);
        }
        return classifier.forward(h);
    }

    public SameDiff sameDiff() {
        return sd;
    }

    public TransformerConfig config() {
        return config;
    }

    /** A copy of every parameter, by variable name. */
    public Map<String, INDArray> parameters() {
        Map<String, INDArray> copy = new java.util.LinkedHashMap<>();
        sd.variables().stream().filter(variable -> variable.getVariableType() == org.nd4j.autodiff.samediff.VariableType.VARIABLE)
                .forEach(variable -> copy.put(variable.name(), variable.getArr().dup()));
        return copy;
    }

    /** Overwrites this model's parameters with {@code parameters} (same config, same names). */
    public void load(Map<String, INDArray> parameters) {
        parameters.forEach((name, array) -> {
            if (!sd.hasVariable(name)) {
                throw new IllegalArgumentException("No parameter '" + name + "' in this model");
            }
            sd.getVariable(name).getArr().assign(array);
        });
    }
}
