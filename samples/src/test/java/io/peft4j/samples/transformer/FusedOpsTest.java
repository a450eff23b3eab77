package io.peft4j.samples.transformer;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.rng.Random;
import org.nd4j.linalg.factory.Nd4j;
import org.nd4j.linalg.ops.transforms.Transforms;

/**
 * ND4J's fused {@code layer_norm} and {@code dot_product_attention} ops, which the samples build on
 * request, compute what the composed definitions do, forward and in every gradient.
 */
class FusedOpsTest {

    private static final List<String> PARTS = List.of("output", "d/dx", "d/dgain", "d/dbias");

    private static double relativeDifference(INDArray expected, INDArray actual) {
        return Transforms.abs(expected.sub(actual)).maxNumber().doubleValue() / expected.amaxNumber().doubleValue();
    }

    /** {@code Σ LN(x) ⊙ w} in its fused or composed form: the output, then the gradients of x, gain and bias. */
    private static List<INDArray> layerNorm(boolean fused, double epsilon) {
        SameDiff sd = SameDiff.create();
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(7);
        LayerNorm norm = new LayerNorm(sd, "norm.gain", "norm.bias", 32, epsilon);
        norm.gain.getArr().assign(Nd4j.rand(random, 32).addi(0.5));
        norm.bias.getArr().assign(Nd4j.rand(random, 32).subi(0.5));
        SDVariable x = sd.var("x", Nd4j.rand(random, 4, 8, 32).muli(3).subi(1));
        SDVariable out = fused ? norm.fused(x) : norm.composed(x);
        return lossAndGradients(sd, out, random, "x", "norm.gain", "norm.bias");
    }

    private static List<INDArray> lossAndGradients(SameDiff sd, SDVariable out, Random random, String... wrt) {
        INDArray shape = sd.output(Map.of(), out.name()).get(out.name());
        SDVariable weights = sd.constant("w", Nd4j.rand(random, shape.shape()).subi(0.5));
        sd.setLossVariables(out.mul(weights).sum().rename("loss").name());
        Map<String, INDArray> gradients = sd.calculateGradients(Map.of(), wrt);
        List<INDArray> result = new ArrayList<>();
        result.add(sd.output(Map.of(), out.name()).get(out.name()));
        for (String name : wrt) {
            result.add(gradients.get(name));
        }
        return result;
    }

    /** In fp32, as the layer's parameters are: a wrong variance (n − 1 instead of n) would differ by 1.6 %. */
    @Test
    void fusedLayerNormEqualsTheDefinitionForwardAndBackward() {
        List<INDArray> fused = layerNorm(true, 1e-12);
        List<INDArray> composed = layerNorm(false, 1e-12);
        for (int i = 0; i < PARTS.size(); i++) {
            double difference = relativeDifference(composed.get(i), fused.get(i));
            assertTrue(difference < 1e-5, PARTS.get(i) + ": relative difference " + difference);
        }
    }

    @Test
    void aSignificantEpsilonIsNeverFused() {
        System.setProperty(LayerNorm.FUSED_PROPERTY, "true");
        try {
            SameDiff sd = SameDiff.create();
            LayerNorm norm = new LayerNorm(sd, "g", "b", 8, 1e-5);
            norm.forward(sd.var("x", Nd4j.rand(DataType.FLOAT, 2, 3, 8)));
            assertTrue(Arrays.stream(sd.ops()).noneMatch(op -> op.opName().equals("layer_norm")),
                    "ε = 1e-5 must keep the composed form: the fused op would drop it");
            SameDiff small = SameDiff.create();
            new LayerNorm(small, "g", "b", 8, 1e-12).forward(small.var("x", Nd4j.rand(DataType.FLOAT, 2, 3, 8)));
            assertEquals(1, Arrays.stream(small.ops()).filter(op -> op.opName().equals("layer_norm")).count());
        } finally {
            System.clearProperty(LayerNorm.FUSED_PROPERTY);
        }
    }

    /** Self-attention over projected q, k, v (4 heads of 4), fused or composed: output and the three gradients. */
    private static List<INDArray> attention(BiFunction<SelfAttention, SDVariable[], SDVariable> form, int keyLength) {
        SameDiff sd = SameDiff.create();
        Random random = Nd4j.getRandomFactory().getNewRandomInstance(11);
        SelfAttention attention = new SelfAttention(sd, "attention", 16, 4, random);
        SDVariable q = sd.var("q", Nd4j.rand(random, 2, 5, 16).subi(0.5).muli(3));
        SDVariable k = sd.var("k", Nd4j.rand(random, 2, keyLength, 16).subi(0.5).muli(3));
        SDVariable v = sd.var("v", Nd4j.rand(random, 2, keyLength, 16).subi(0.5));
        SDVariable out = form.apply(attention, new SDVariable[] {q, k, v});
        return lossAndGradients(sd, out, random, "q", "k", "v");
    }

    /** In double precision, so that a wrong scale or layout cannot hide behind fp32 rounding. */
    @Test
    void fusedAttentionEqualsTheDefinitionForwardAndBackward() {
        Nd4j.setDefaultDataTypes(DataType.DOUBLE, DataType.DOUBLE);
        try {
            for (int keyLength : new int[] {5, 9}) {   // 9: prefix tuning's extra key positions
                List<INDArray> fused = attention((a, in) -> a.fusedAttention(in[0], in[1], in[2]), keyLength);
                List<INDArray> composed = attention((a, in) -> a.attention(in[0], in[1], in[2]), keyLength);
                List<String> parts = List.of("output", "d/dq", "d/dk", "d/dv");
                for (int i = 0; i < parts.size(); i++) {
                    double difference = relativeDifference(composed.get(i), fused.get(i));
                    assertTrue(difference < 1e-9, parts.get(i) + " with " + keyLength + " keys: relative difference " + difference);
                }
            }
        } finally {
            Nd4j.setDefaultDataTypes(DataType.FLOAT, DataType.FLOAT);
        }
    }
}
