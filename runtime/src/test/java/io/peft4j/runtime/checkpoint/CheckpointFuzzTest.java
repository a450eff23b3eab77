package io.peft4j.runtime.checkpoint;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import io.peft4j.runtime.PeftModel;
import io.peft4j.runtime.internal.AgentStatus;
import io.peft4j.runtime.lora.LoraAdapter;
import io.peft4j.runtime.lora.LoraLayer;
import io.peft4j.runtime.testmodel.TwoLayerModel;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.TreeMap;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.factory.Nd4j;

/**
 * Seeded fuzzing of saved adapters: every mutated file either loads exactly the saved weights or is
 * refused with a {@link CheckpointException} that leaves the model's weights as they were; never another
 * exception, never other weights.
 */
class CheckpointFuzzTest {

    private static final int CASES = 3000;
    private static final long SEED = 20261129L;

    @TempDir
    Path dir;

    @BeforeAll
    static void agentInstalled() {
        System.setProperty(AgentStatus.INSTALLED_PROPERTY, "true");
    }

    private static List<float[]> values(PeftModel peft) {
        List<float[]> values = new ArrayList<>();
        for (LoraLayer layer : LoraAdapter.of(peft).layerViews()) {
            values.add(layer.weights().a().dup().data().asFloat());
            values.add(layer.weights().b().dup().data().asFloat());
        }
        return values;
    }

    private static boolean same(List<float[]> a, List<float[]> b) {
        for (int i = 0; i < a.size(); i++) {
            if (!Arrays.equals(a.get(i), b.get(i))) {
                return false;
            }
        }
        return true;
    }

    @Test
    void everyMutatedCheckpointLoadsExactlyOrIsRefusedCleanly() throws IOException {
        PeftModel source = PeftModel.builder(new TwoLayerModel(DataType.FLOAT, 1)).seed(1).attach();
        org.nd4j.linalg.api.rng.Random values = Nd4j.getRandomFactory().getNewRandomInstance(2);
        LoraAdapter.of(source).layerViews().forEach(layer -> layer.weights().b().assign(Nd4j.rand(values, layer.weights().b().shape())));
        Path original = dir.resolve("original");
        source.save(original);
        List<float[]> saved = values(source);
        byte[] weights = Files.readAllBytes(original.resolve(AdapterCheckpoint.WEIGHTS_FILE));
        byte[] config = Files.readAllBytes(original.resolve(AdapterCheckpoint.CONFIG_FILE));
        long headerLength = ByteBuffer.wrap(weights).order(ByteOrder.LITTLE_ENDIAN).getLong(0);

        PeftModel target = PeftModel.builder(new TwoLayerModel(DataType.FLOAT, 1)).seed(99).attach();
        Path mutated = dir.resolve("mutated");
        Files.createDirectories(mutated);
        Random random = new Random(SEED);
        TreeMap<String, Integer> outcomes = new TreeMap<>();
        long start = System.nanoTime();
        for (int i = 0; i < CASES; i++) {
            byte[] w = weights.clone();
            byte[] c = config.clone();
            String kind;
            switch (random.nextInt(10)) {
                case 0 -> {
                    kind = "flip a weights bit";
                    w[random.nextInt(w.length)] ^= (byte) (1 << random.nextInt(8));
                }
                case 1 -> {
                    kind = "flip a config bit";
                    c[random.nextInt(c.length)] ^= (byte) (1 << random.nextInt(8));
                }
                case 2 -> {
                    kind = "truncate the weights";
                    w = Arrays.copyOf(w, random.nextInt(w.length));
                }
                case 3 -> {
                    kind = "truncate the config";
                    c = Arrays.copyOf(c, random.nextInt(c.length));
                }
                case 4 -> {
                    kind = "append to the weights";
                    byte[] tail = new byte[1 + random.nextInt(16)];
                    random.nextBytes(tail);
                    w = concat(w, tail);
                }
                case 5 -> {
                    kind = "change the header length";
                    long delta = random.nextInt(33) - 16;
                    ByteBuffer.wrap(w).order(ByteOrder.LITTLE_ENDIAN).putLong(0, headerLength + (delta == 0 ? 1 : delta));
                }
                case 6 -> {
                    kind = "change a header digit";
                    w = replaceIn(w, 8, (int) headerLength, random, "0123456789", "0123456789");
                }
                case 7 -> {
                    kind = "change a config character";
                    c = replaceIn(c, 0, c.length, random, null, "0123456789.-,:{}[]\" eE");
                }
                case 8 -> {
                    kind = "change a header character";
                    w = replaceIn(w, 8, (int) headerLength, random, null, "0123456789.-,:{}[]\" FBI");
                }
                default -> {
                    kind = "change a config number";
                    c = replaceIn(c, 0, c.length, random, "0123456789", "0123456789");
                }
            }
            Files.write(mutated.resolve(AdapterCheckpoint.WEIGHTS_FILE), w);
            Files.write(mutated.resolve(AdapterCheckpoint.CONFIG_FILE), c);
            List<float[]> before = values(target);
            String outcome;
            try {
                target.load(mutated);
                if (!same(saved, values(target))) {
                    fail("case " + i + " (" + kind + ") loaded other weights than were saved");
                }
                outcome = "loaded the saved weights";
            } catch (CheckpointException refused) {
                if (!same(before, values(target))) {
                    fail("case " + i + " (" + kind + ") was refused but changed weights: " + refused.getMessage());
                }
                outcome = "refused, weights untouched";
            } catch (RuntimeException | Error other) {
                throw new AssertionError("case " + i + " (" + kind + ") threw " + other, other);
            }
            outcomes.merge(outcome, 1, Integer::sum);
            outcomes.merge(kind + ": " + outcome, 1, Integer::sum);
        }
        double seconds = (System.nanoTime() - start) / 1e9;
        System.out.printf("checkpoint fuzzing: %d cases in %.1f s: %s%n", CASES, seconds, outcomes);
        assertTrue(outcomes.getOrDefault("refused, weights untouched", 0) > CASES / 2, outcomes.toString());
        assertTrue(outcomes.getOrDefault("loaded the saved weights", 0) > 0, "some mutations are harmless: " + outcomes);
        target.load(original);
        assertArrayEquals(saved.get(0), values(target).get(0), 0f);
    }

    private static byte[] concat(byte[] a, byte[] b) {
        byte[] both = Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, both, a.length, b.length);
        return both;
    }

    /** Replaces one character in {@code [from, to)} that is one of {@code among} (any if null) by one of {@code by}. */
    private static byte[] replaceIn(byte[] bytes, int from, int to, Random random, String among, String by) {
        byte[] copy = bytes.clone();
        List<Integer> candidates = new ArrayList<>();
        for (int i = from; i < Math.min(to, copy.length); i++) {
            if (among == null || among.indexOf(copy[i]) >= 0) {
                candidates.add(i);
            }
        }
        if (!candidates.isEmpty()) {
            int at = candidates.get(random.nextInt(candidates.size()));
            copy[at] = (byte) by.charAt(random.nextInt(by.length()));
        }
        return copy;
    }

}
