package io.peft4j.samples.gpt;

import io.peft4j.annotations.PromptInit;
import io.peft4j.annotations.PromptTuning;
import io.peft4j.runtime.KeyValueCache;
import io.peft4j.runtime.checkpoint.SafetensorsFile;
import io.peft4j.runtime.checkpoint.TensorDtype;
import io.peft4j.samples.transformer.LayerNorm;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.autodiff.samediff.VariableType;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.indexing.NDArrayIndex;

/**
 * A GPT-style decoder over bytes: token and position embeddings, {@code layers} pre-LayerNorm
 * {@link DecoderBlock}s with causal self-attention, a final LayerNorm and an output projection tied
 * to the token embedding.
 *
 * <p>Input {@code tokens [batch, T]} (INT32, {@code T ≤ context}), output logits
 * {@code [batch, T, vocab]}. Plain annotated Java: LoRA on the attention's query and value
 * projections, prefix tuning on each block's attention, prompt tuning (16 virtual tokens) on the
 * embedding. Variables are named by field path ({@code blocks.0.attention.query.weight}).
 */
public final class GptModel {
    final GptConfig config;
    final SameDiff sd;
    @PromptTuning(virtualTokens = 16, init = PromptInit.VOCAB_SAMPLE)
    final TokenEmbedding embedding;
    final List<DecoderBlock> blocks = new ArrayList<>();
    final LayerNorm finalNorm;
    private final List<String> baseNames;

    /** One step of cached decoding: the logits of the last position {@code [batch, vocab]} and each block's cache. */
    public record Step(SDVariable logits, List<KeyValue> present) {
    }

    public GptModel(SameDiff sd, GptConfig config, long seed) {
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(seed);
        this.config = config;
        this.sd = sd;
        this.embedding = new TokenEmbedding(sd, "embedding", config, random);
        for (int i = 0; i < config.layers(); i++) {
            blocks.add(new DecoderBlock(sd, "blocks." + i, config, random));
        }
        this.finalNorm = new LayerNorm(sd, "final_norm", config.hidden());
        this.baseNames = sd.variables().stream().filter(variable -> variable.getVariableType() == VariableType.VARIABLE)
                .map(SDVariable::name).toList();
    }

    /**
     * A full pass: {@code tokens [batch, length] → logits [batch, length, vocab]}, token {@code t} at
     * position {@code t}. Positions a prompt adds in front are computed and then dropped.
     */
    public SDVariable logits(SDVariable tokens, int length) {
        SDVariable positions = sd.constant(Nd4j.arange(length).castTo(DataType.INT32));
        SDVariable h = embedding.forward(tokens, positions);
        for (DecoderBlock block : blocks) {
            h = block.forward(h);
        }
        return Sequences.last(embedding.logits(finalNorm.forward(h)), length);
    }

    /**
     * Cached decoding. Without {@code past} ({@code null}), a full pass over {@code tokens [batch, T]} at
     * {@code positions [T]} that returns every block's cache; with it, one new token
     * {@code [batch, 1]} at {@code positions [1]} over the cached {@code [batch, P, d]} keys and values.
     */
    public Step decode(SDVariable tokens, SDVariable positions, List<KeyValue> past) {
        SDVariable h = embedding.forward(tokens, positions);
        if (past != null) {
            h = Sequences.last(h, 1);
        }
        List<KeyValue> present = new ArrayList<>();
        for (int i = 0; i < blocks.size(); i++) {
            Attended attended = blocks.get(i).decode(h, past == null ? null : past.get(i));
            h = attended.output();
            present.add(attended.present());
        }
        SDVariable last = Sequences.last(embedding.logits(finalNorm.forward(h)), 1);
        return new Step(last.reshape(-1, config.vocabulary()), present);
    }

    /**
     * Eager cached decoding of one sequence (inference without a graph): feeds {@code tokens [T]} at
     * {@code positions [T]} (INT32) through every block, appending to each block's {@code caches} entry,
     * and returns the last position's logits {@code [1, vocab]}. With empty caches {@code T} is the
     * prompt; after that, the tokens that follow it. Adapters apply as they are on at the call.
     */
    public INDArray decode(INDArray tokens, INDArray positions, List<KeyValueCache> caches) {
        INDArray h = embedding.forward(tokens, positions);
        long length = h.size(0);
        if (!caches.get(0).isEmpty() && length != tokens.length()) {
            h = h.get(NDArrayIndex.interval(length - tokens.length(), length), NDArrayIndex.all());
        }
        for (int i = 0; i < blocks.size(); i++) {
            h = blocks.get(i).decode(h, caches.get(i));
        }
        INDArray last = h.size(0) == 1 ? h : h.get(NDArrayIndex.interval(h.size(0) - 1, h.size(0)), NDArrayIndex.all());
        return embedding.logits(finalNorm.forward(last));
    }

    public SameDiff sameDiff() {
        return sd;
    }

    public GptConfig config() {
        return config;
    }

    /** A copy of every base parameter, by variable name (adapters excluded: they are not created by this model). */
    public Map<String, INDArray> parameters() {
        Map<String, INDArray> copy = new LinkedHashMap<>();
        for (String name : baseNames()) {
            copy.put(name, sd.getVariable(name).getArr().dup());
        }
        return copy;
    }

    /** Overwrites this model's parameters with {@code parameters} (same config, same names). */
    public void load(Map<String, INDArray> parameters) {
        for (String name : baseNames()) {
            INDArray array = parameters.get(name);
            if (array == null) {
                throw new IllegalArgumentException("the weights have no '" + name + "' for this " + config + " model");
            }
            sd.getVariable(name).getArr().assign(array);
        }
    }

    /** Saves the base parameters to {@code file} (safetensors, F32) with the config in the header. */
    public void save(Path file) {
        Map<String, String> metadata = new HashMap<>(config.toMetadata());
        metadata.put("format", "pt");
        SafetensorsFile.write(file, parameters(), TensorDtype.F32, metadata);
    }

    /** A model with the config and weights saved by {@link #save}. */
    public static GptModel load(SameDiff sd, Path file) {
        GptConfig config = GptConfig.fromMetadata(SafetensorsFile.readHeader(file).metadata(), file.toString());
        GptModel model = new GptModel(sd, config, 0);
        model.load(SafetensorsFile.read(file));
        return model;
    }

    private List<String> baseNames() {
        return baseNames;
    }
}
