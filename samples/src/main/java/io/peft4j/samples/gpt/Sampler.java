package io.peft4j.samples.gpt;

import java.util.Arrays;
import java.util.Comparator;
import java.util.Random;
import java.util.stream.IntStream;

/**
 * Picks the next token from logits {@code [vocab]}: temperature, then top-k, then top-p (nucleus)
 * filtering, then a draw from a seeded {@link Random}, so a seed fixes the text. Temperature 0
 * picks the most likely token.
 */
public final class Sampler {
    private final double temperature;
    private final int topK;
    private final double topP;
    private final Random random;

    /**
     * @param temperature ≥ 0; 0 is greedy
     * @param topK        keep the k most likely tokens; 0 keeps all
     * @param topP        keep the smallest set of most likely tokens whose probability reaches p; 1 keeps all
     */
    public Sampler(double temperature, int topK, double topP, long seed) {
        if (temperature < 0 || topK < 0 || topP <= 0 || topP > 1) {
            throw new IllegalArgumentException("need temperature ≥ 0, top-k ≥ 0 and 0 < top-p ≤ 1; got temperature " + temperature
                    + ", top-k " + topK + ", top-p " + topP);
        }
        this.temperature = temperature;
        this.topK = topK;
        this.topP = topP;
        this.random = new Random(seed);
    }

    public int next(float[] logits) {
        if (temperature == 0) {
            return IntStream.range(0, logits.length).reduce((a, b) -> logits[b] > logits[a] ? b : a).orElseThrow();
        }
        Integer[] order = IntStream.range(0, logits.length).boxed().toArray(Integer[]::new);
        Arrays.sort(order, Comparator.comparingDouble((Integer i) -> logits[i]).reversed());
        int kept = topK == 0 ? logits.length : Math.min(topK, logits.length);
        double max = logits[order[0]] / temperature;
        double[] weights = new double[kept];
        double total = 0;
        for (int i = 0; i < kept; i++) {
            weights[i] = Math.exp(logits[order[i]] / temperature - max);
            total += weights[i];
        }
        double cumulative = 0;
        int nucleus = kept;
        for (int i = 0; i < kept; i++) {
            cumulative += weights[i] / total;
            if (cumulative >= topP) {
                nucleus = i + 1;
                break;
            }
        }
        double nucleusTotal = 0;
        for (int i = 0; i < nucleus; i++) {
            nucleusTotal += weights[i];
        }
        double draw = random.nextDouble() * nucleusTotal;
        for (int i = 0; i < nucleus; i++) {
            draw -= weights[i];
            if (draw < 0) {
                return order[i];
            }
        }
        return order[nucleus - 1];
    }
}
