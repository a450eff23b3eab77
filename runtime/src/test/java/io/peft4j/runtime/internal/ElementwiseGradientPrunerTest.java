package io.peft4j.runtime.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Map;
import java.util.function.BiFunction;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;
import org.nd4j.autodiff.samediff.SDVariable;
import org.nd4j.autodiff.samediff.SameDiff;
import org.nd4j.linalg.api.buffer.DataType;
import org.nd4j.linalg.api.ndarray.INDArray;
import org.nd4j.linalg.api.ops.impl.transforms.pairwise.arithmetic.bp.BaseArithmeticBackpropOp;
import org.nd4j.linalg.factory.Nd4j;

/**
 * A pruned gradient graph computes exactly SameDiff's own gradients for the trainable variables,
 * with an identity or a multiply instead of an {@code add_bp}, {@code subtract_bp} or
 * {@code multiply_bp} wherever a frozen operand's gradient is unused and the other operand was not
 * broadcast.
 */
class ElementwiseGradientPrunerTest {
    private static final INDArray FEATURES = features();

    private static INDArray features() {
        Nd4j.getRandom().setSeed(3);
        return Nd4j.rand(DataType.DOUBLE, 5, 4).subi(0.5);
    }

    /** {@code loss = Σ tanh(combine(x · w, frozen))²} with {@code w [4, 3]} trainable. */
    private record Case(String name, BiFunction<SDVariable, SDVariable, SDVariable> combine, long[] frozenShape, int rewritten) {
    }

    private static Case of(String name) {
        return switch (name) {
            case "activation + bias" -> new Case(name, SDVariable::add, new long[] {3}, 1);
            case "bias + activation" -> new Case(name, (h, b) -> b.add(h), new long[] {3}, 1);
            case "activation - bias" -> new Case(name, SDVariable::sub, new long[] {3}, 1);
            case "activation * scale" -> new Case(name, SDVariable::mul, new long[] {3}, 1);
            case "scale * activation" -> new Case(name, (h, s) -> s.mul(h), new long[] {1, 3}, 1);
            case "bias - activation" -> new Case(name, (h, b) -> b.sub(h), new long[] {3}, 0);
            case "activation + same-shape constant" -> new Case(name, SDVariable::add, new long[] {5, 3}, 1);
            default -> throw new IllegalArgumentException(name);
        };
    }

    @ParameterizedTest(name = "{0}")
    @ValueSource(strings = {"activation + bias", "bias + activation", "activation - bias", "activation * scale",
            "scale * activation", "bias - activation", "activation + same-shape constant"})
    void gradientOfTheTrainableSideIsSameDiffsOwn(String name) {
        Case example = of(name);
        SameDiff original = graph(example);
        INDArray expected = original.calculateGradients(Map.of("x", FEATURES), "w").get("w");

        SameDiff pruned = graph(example);
        assertEquals(example.rewritten(), ElementwiseGradientPruner.prune(pruned, () -> Map.of("x", FEATURES)));
        INDArray actual = pruned.calculateGradients(Map.of("x", FEATURES), "w").get("w");

        assertEquals(0.0, expected.sub(actual).amaxNumber().doubleValue(), 1e-12);
        assertEquals(example.rewritten() == 1 ? 0 : 1, elementwiseBackwardOps(pruned), "the combine op's backward op");
    }

    @Test
    void leavesAnOpAloneWhenTheUsedOperandWasBroadcast() {
        SameDiff sd = SameDiff.create();
        SDVariable column = sd.var("w", Nd4j.rand(DataType.DOUBLE, 5, 1));
        SDVariable frozen = sd.constant("frozen", Nd4j.rand(DataType.DOUBLE, 5, 3));
        sd.math.square(sd.math.tanh(column.mul(frozen))).sum().rename("loss");
        sd.setLossVariables("loss");
        INDArray expected = sd.calculateGradients(Map.of(), "w").get("w");

        SameDiff again = SameDiff.create();
        again.math.square(again.math.tanh(again.var("w", sd.getArrForVarName("w").dup())
                .mul(again.constant("frozen", sd.getArrForVarName("frozen").dup())))).sum().rename("loss");
        again.setLossVariables("loss");

        assertEquals(0, ElementwiseGradientPruner.prune(again, Map::of), "w [5, 1] was broadcast to [5, 3]: its gradient is a sum");
        assertEquals(0.0, expected.sub(again.calculateGradients(Map.of(), "w").get("w")).amaxNumber().doubleValue(), 1e-12);
    }

    @Test
    void leavesOpsWhoseGradientsAreBothUsedAloneAndAsksForNoBatchTheSecondTime() {
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, 4);
        SDVariable w = sd.var("w", Nd4j.rand(DataType.DOUBLE, 4, 3));
        SDVariable trainableBias = sd.var("trainableBias", Nd4j.rand(DataType.DOUBLE, 3));
        SDVariable frozenBias = sd.constant("frozenBias", Nd4j.rand(DataType.DOUBLE, 3));
        sd.math.square(sd.math.tanh(x.mmul(w).add(trainableBias)).add(frozenBias)).sum().rename("loss");
        sd.setLossVariables("loss");

        assertEquals(1, ElementwiseGradientPruner.prune(sd, () -> Map.of("x", FEATURES)), "only the frozen bias's add");
        assertEquals(1, elementwiseBackwardOps(sd), "the trainable bias needs its gradient");
        assertEquals(0, ElementwiseGradientPruner.prune(sd, () -> {
            throw new AssertionError("nothing left to rewrite, so no batch is needed");
        }));
        assertTrue(sd.calculateGradients(Map.of("x", FEATURES), "w", "trainableBias").values().stream()
                .allMatch(gradient -> gradient.amaxNumber().doubleValue() > 0));
    }

    @Test
    void rewritesNothingWhenTheBatchCannotBeRunForward() {
        SameDiff sd = graph(of("activation + bias"));
        INDArray expected = graph(of("activation + bias")).calculateGradients(Map.of("x", FEATURES), "w").get("w");

        assertEquals(0, ElementwiseGradientPruner.prune(sd, () -> Map.of("notAPlaceholderOfThisGraph", FEATURES)));
        assertEquals(1, elementwiseBackwardOps(sd));
        assertEquals(0.0, expected.sub(sd.calculateGradients(Map.of("x", FEATURES), "w").get("w")).amaxNumber().doubleValue(), 1e-12);
    }

    private static SameDiff graph(Case example) {
        Nd4j.getRandom().setSeed(11);
        INDArray weight = Nd4j.rand(DataType.DOUBLE, 4, 3).subi(0.5);
        INDArray frozenValue = Nd4j.rand(DataType.DOUBLE, example.frozenShape()).addi(0.5);
        SameDiff sd = SameDiff.create();
        SDVariable x = sd.placeHolder("x", DataType.DOUBLE, -1, 4);
        SDVariable hidden = x.mmul(sd.var("w", weight));
        SDVariable frozen = sd.constant("frozen", frozenValue);
        sd.math.square(sd.math.tanh(example.combine().apply(hidden, frozen))).sum().rename("loss");
        sd.setLossVariables("loss");
        return sd;
    }

    private static long elementwiseBackwardOps(SameDiff sd) {
        return sd.getFunction("grad").getOps().values().stream().filter(op -> op.getOp() instanceof BaseArithmeticBackpropOp).count();
    }
}
