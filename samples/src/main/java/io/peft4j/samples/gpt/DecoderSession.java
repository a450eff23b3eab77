package io.peft4j.samples.gpt;

import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.factory.Nd4j;

/**
 * One model ready to generate, with the adapters that were attached and on when it was built (switch
 * between them with the {@code PeftModel}: the graphs follow its constants).
 *
 * <p>It holds two graphs over the model's weights. The full graph runs a whole sequence
 * {@code [1, T]} and returns the last position's logits {@code [1, vocab]} and every block's keys and
 * values {@code [1, P, d]} (prefixes and virtual tokens first, so {@code P = n + T} with them). The step
 * graph takes one new token, its position and that cache, and returns the logits and the cache one
 * position longer: each new token costs one position. Without the cache, every token reruns the full
 * graph over the whole sequence.
 */
public final class DecoderSession {
    private final String name;
    private final GptModel model;
    private final SameDiff sd;
    private final String fullLogits;
    private final List<String> fullPresent = new ArrayList<>();
    private final String stepLogits;
    private final List<String> stepPast = new ArrayList<>();
    private final List<String> stepPresent = new ArrayList<>();

    /**
     * Builds the graphs of {@code model} with what is attached to it now: add adapters (and switch on
     * a prompt- or prefix-tuned one, whose positions are part of the graph) before.
     */
    public DecoderSession(String name, GptModel model) {
        this.name = name;
        this.model = model;
        this.sd = model.sameDiff();
        int width = model.config().hidden();

        SDVariable tokens = sd.placeHolder(name + ".full.tokens", DataType.INT32, 1, -1);
        SDVariable positions = sd.placeHolder(name + ".full.positions", DataType.INT32, -1);
        GptModel.Step full = model.decode(tokens, positions, null);
        this.fullLogits = full.logits().name();
        full.present().forEach(cache -> {
            fullPresent.add(cache.keys().name());
            fullPresent.add(cache.values().name());
        });

        SDVariable token = sd.placeHolder(name + ".step.token", DataType.INT32, 1, 1);
        SDVariable position = sd.placeHolder(name + ".step.position", DataType.INT32, 1);
        List<KeyValue> past = new ArrayList<>();
        for (int i = 0; i < model.config().layers(); i++) {
            SDVariable keys = sd.placeHolder(name + ".step.past." + i + ".keys", DataType.FLOAT, 1, -1, width);
            SDVariable values = sd.placeHolder(name + ".step.past." + i + ".values", DataType.FLOAT, 1, -1, width);
            past.add(new KeyValue(keys, values));
            stepPast.add(keys.name());
            stepPast.add(values.name());
        }
        GptModel.Step step = model.decode(token, position, past);
        this.stepLogits = step.logits().name();
        step.present().forEach(cache -> {
            stepPresent.add(cache.keys().name());
            stepPresent.add(cache.values().name());
        });
    }

    public String name() {
        return name;
    }

    public GptModel model() {
        return model;
    }

    /** Logits {@code [vocab]} of the position after {@code tokens}, by a full pass over all of them. */
    public float[] fullLogits(int[] tokens) {
        Map<String, INDArray> out = runFull(tokens, List.of(fullLogits));
        return out.get(fullLogits).toFloatVector();
    }

    /** A key/value cache that decodes token by token. */
    public Cache newCache() {
        return new Cache();
    }

    private Map<String, INDArray> runFull(int[] tokens, List<String> outputs) {
        Map<String, INDArray> inputs = Map.of(name + ".full.tokens", Nd4j.createFromArray(new int[][] {tokens}),
                name + ".full.positions", Nd4j.arange(tokens.length).castTo(DataType.INT32));
        return sd.output(inputs, outputs.toArray(new String[0]));
    }

    /** The keys and values of every position fed so far, for one sequence. */
    public final class Cache {
        private final List<INDArray> arrays = new ArrayList<>();
        private int positions;

        private Cache() {
        }

        /** Feeds {@code tokens} (all of them at once if the cache is empty) and returns the next position's logits. */
        public float[] feed(int... tokens) {
            if (positions == 0) {
                List<String> outputs = new ArrayList<>(fullPresent);
                outputs.add(fullLogits);
                Map<String, INDArray> out = runFull(tokens, outputs);
                fullPresent.forEach(present -> arrays.add(out.get(present)));
                positions = tokens.length;
                return out.get(fullLogits).toFloatVector();
            }
            float[] logits = null;
            for (int token : tokens) {
                logits = step(token);
            }
            return logits;
        }

        private float[] step(int token) {
            Map<String, INDArray> inputs = new HashMap<>();
            inputs.put(name + ".step.token", Nd4j.createFromArray(new int[][] {{token}}));
            inputs.put(name + ".step.position", Nd4j.createFromArray(positions));
            for (int i = 0; i < stepPast.size(); i++) {
                inputs.put(stepPast.get(i), arrays.get(i));
            }
            List<String> outputs = new ArrayList<>(stepPresent);
            outputs.add(stepLogits);
            Map<String, INDArray> out = sd.output(inputs, outputs.toArray(new String[0]));
            for (int i = 0; i < stepPresent.size(); i++) {
                arrays.set(i, out.get(stepPresent.get(i)));
            }
            positions++;
            return out.get(stepLogits).toFloatVector();
        }

        /** Token positions fed so far (prefixes and virtual tokens not counted). */
        public int positions() {
            return positions;
        }

        /** Cached positions per layer, prefixes and virtual tokens included. */
        public long cachedPositions() {
            return arrays.isEmpty() ? 0 : arrays.get(0).size(1);
        }
    }
}
